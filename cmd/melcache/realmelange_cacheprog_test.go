package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
)

// cacheprogConfig builds cacheprog/testdata/hello (no dependencies) with
// the real melange's go/build; the smoke test prints cacheprogHello.
const cacheprogConfig = `package:
  name: hello
  version: 0.1.0
  epoch: 0
environment:
  contents:
    packages:
      - busybox
      - ca-certificates-bundle
      - build-base
      - go
pipeline:
  - uses: go/build
    with:
      packages: .
      output: hello
  - name: Smoke test
    runs: |
      "${{targets.contextdir}}/usr/bin/hello"
`

const cacheprogHello = "hello, WORLD"

// TestRealMelangeCacheprog is `melcache build --cacheprog` with the real
// melange (bubblewrap): the guest's go command reaches the host through the
// static forwarder placed in DIR/.melcache, the first build stores its
// packages through the host, and the second compiles nothing, its objects
// served as hits through the bridge. (Go's module-index entries for the
// standard library get new keys every real-melange build, see
// ../shared/melange/README.md, so the second build is not all hits.)
func TestRealMelangeCacheprog(t *testing.T) {
	real := melangetest.RealMelange(t)
	w := newE2E(t, -1)
	static := testenv.StaticMelcacheBinary(t)
	hello := filepath.Join(testenv.RepoRoot(), "cacheprog", "testdata", "hello")
	for _, f := range []string{"go.mod", "main.go", "greet/greet.go", "greet/greet_test.go"} {
		b, err := os.ReadFile(filepath.Join(hello, f))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(w.work, "src", f), string(b))
	}
	writeTestFile(t, filepath.Join(w.work, "src", "melange.yaml"), cacheprogConfig)
	apkCache := filepath.Join(w.work, "apkcache")
	build := func(out string) (buildReport, string) {
		t.Helper()
		args := []string{"build", "src/melange.yaml", "--melange", real.Melange, "--offline", "--dir", "cache",
			"--set", "GOFLAGS=-x", "--json", "--cacheprog", "--cacheprog-binary", static, "--"}
		args = append(args, real.Args(apkCache, filepath.Join(w.work, out), filepath.Join(w.work, "src"))...)
		cmd := w.command(nil, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if code := exitStatus(t, cmd.Run()); code != 0 {
			t.Fatalf("%s: melcache build --cacheprog: exit %d\n%s\n%s", out, code, o.String(), e.String())
		}
		if !strings.Contains(e.String(), cacheprogHello) {
			t.Errorf("%s: the smoke test did not print %q:\n%s", out, cacheprogHello, e.String())
		}
		return decodeReport(t, o.String()), e.String()
	}
	first, log1 := build("packages-1")
	c := first.CacheProg
	if c == nil || c.Puts == 0 || c.Errors != 0 {
		t.Fatalf("first build: cacheprog %+v, warnings %q\n%s", c, first.Warnings, log1)
	}
	if testenv.CountCompiles([]byte(log1)) == 0 {
		t.Errorf("first build compiled nothing:\n%s", log1)
	}
	t.Logf("first build: cacheprog %+v", *c)
	second, log2 := build("packages-2")
	c = second.CacheProg
	if c != nil {
		t.Logf("second build: cacheprog %+v", *c)
	}
	if c == nil || c.Hits == 0 || c.Errors != 0 || c.Hits < c.Puts {
		t.Errorf("second build: cacheprog %+v, want hits for what the first stored", c)
	}
	if n := testenv.CountCompiles([]byte(log2)); n != 0 {
		t.Errorf("second build compiled %d packages through the bridge:\n%s", n, log2)
	}
}
