package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/oci"
)

// realConfig builds examples/hello-go (its go.mod, go.sum and main.go are
// copied next to it) with the real melange from the offline apk repository
// of ../shared/melange: an unpinned go, so {go} comes from that
// repository's APKINDEX. Its smoke test prints realHello.
const realConfig = `package:
  name: hello-go
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
      output: hello-go
      ldflags: -X main.version=${{package.version}}
  - name: Smoke test
    runs: |
      "${{targets.contextdir}}/usr/bin/hello-go" --name melange
`

// realHello is what the smoke test prints.
const realHello = "hello, melange, from hello-go v0.1.0"

// realKey is the README's key template.
const realKey = "go-{go}-{arch}-{hash:go.sum}"

// helloGoModules is how many modules main.go imports from outside the
// standard library (pflag and x/mod): what --preload downloads.
const helloGoModules = 2

// realWorld is TestRealMelangeBuild's setup: the e2e work dir with the
// hello-go sources in src/, the real melange and its repository, melange's
// package cache shared by the test's builds (it holds apks, not Go caches).
type realWorld struct {
	*e2e
	real     *melangetest.Real
	apkCache string
}

// melangeArgs are ../shared/melange/README.md's flags, with the packages
// written to out (relative to the work dir).
func (w *realWorld) melangeArgs(out string) []string {
	return w.real.Args(w.apkCache, filepath.Join(w.work, out), filepath.Join(w.work, "src"))
}

// build runs `melcache build src/melange.yaml --json` with the given flags
// and melange args, inside a new network namespace when offline (loopback
// only, not even the test's registry), and returns the report, melange's
// output, the -x compile actions counted in it and the wall time.
func (w *realWorld) build(name string, offline bool, env []string, flags []string, out string) (buildReport, string, int, time.Duration) {
	w.t.Helper()
	args := append([]string{"build", "src/melange.yaml", "--melange", w.real.Melange, "--offline",
		"--set", "GOFLAGS=-x", "--json"}, flags...)
	args = append(append(args, "--"), w.melangeArgs(out)...)
	cmd := w.command(env, args...)
	if offline {
		cmd.Args = append([]string{"unshare", "--net", "--"}, cmd.Args...)
		cmd.Path = testenv.RequireTool(w.t, "unshare")
	}
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if code := exitStatus(w.t, err); code != 0 {
		w.t.Fatalf("%s melcache build: exit %d\n%s\n%s", name, code, o.String(), s.String())
	}
	if !strings.Contains(s.String(), realHello) {
		w.t.Errorf("%s build: the smoke test did not print %q:\n%s", name, realHello, s.String())
	}
	return decodeReport(w.t, o.String()), s.String(), testenv.CountCompiles(s.Bytes()), wall
}

// wantTag is the tag the README's key gives hello-go here: {go} is the
// minor version of the repository's go (/usr/local/go, which
// build-apkrepo.sh packages), {hash:go.sum} 16 hex digits of go.sum's
// SHA-256, computed here independently of melcache.
func wantTag(t *testing.T, goSum string) string {
	t.Helper()
	v, err := os.ReadFile("/usr/local/go/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(v), "\n")
	parts := strings.SplitN(strings.TrimPrefix(first, "go"), ".", 3)
	if len(parts) < 2 {
		t.Fatalf("/usr/local/go/VERSION starts %q, not goMAJOR.MINOR", first)
	}
	b, err := os.ReadFile(goSum)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return "go-" + parts[0] + "." + parts[1] + "-x86_64-" + hex.EncodeToString(h[:])[:16]
}

// TestRealMelangeBuild is issue 12's end-to-end flow with the real melange
// (../shared/melange), through the CLI with the README's key:
//
//   - cold: a first build into an empty cache, modules preloaded from a
//     file:// proxy, pushed to a real registry under go-1.NN-x86_64-HASH;
//   - warm: a fresh dir restored from the registry, then built in a new
//     network namespace: nothing compiled, no module downloaded;
//   - unchanged rebuild in the same dir: the report says 0 compile actions
//     run;
//   - doctor --config after the build passes.
//
// Compile actions are counted twice, independently: in the guest's
// `go build -x` output (GOFLAGS=-x through the env-file) and in the
// report, which must agree.
func TestRealMelangeBuild(t *testing.T) {
	t.Parallel() // slow and self-contained (own dirs, registry, processes): overlaps with the others
	real := melangetest.RealMelange(t)
	testenv.RequireTool(t, "unshare")
	w := &realWorld{e2e: newE2E(t, -1), real: real}
	w.apkCache = filepath.Join(w.work, "apkcache")
	example := filepath.Join(testenv.RepoRoot(), "examples", "hello-go")
	proxy := melangetest.ModuleProxy(t, "hello-go-proxy", example)
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(example, f))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(w.work, "src", f), string(b))
	}
	writeTestFile(t, filepath.Join(w.work, "src", "melange.yaml"), realConfig)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	ref := reg.Host + "/e2e/hello-go"
	tag := wantTag(t, filepath.Join(w.work, "src", "go.sum"))

	// 1. Cold, pushed.
	cold, _, coldX, coldWall := w.build("cold", false, []string{"GOPROXY=" + proxy},
		[]string{"--dir", "cold", "--preload", "--key", realKey, "--push", ref}, "packages-cold")
	if coldX < 10 {
		t.Errorf("cold build: %d compile actions in go build -x, want a full build (≥ 10)", coldX)
	}
	if cold.Preloaded == nil || *cold.Preloaded != helloGoModules {
		t.Errorf("cold build preloaded %v modules, want %d (pflag, x/mod)", cold.Preloaded, helloGoModules)
	}
	if cold.Push == nil || cold.Push.Tag != tag {
		t.Fatalf("cold build pushed %+v, want a snapshot tagged %s", cold.Push, tag)
	}
	if n := len(reg.Requests(t, "PUT", "/v2/e2e/hello-go/manifests/"+tag)); n != 1 {
		t.Errorf("registry saw %d manifest PUTs for %s, want 1", n, tag)
	}
	if cold.Misses == nil || *cold.Misses < coldX {
		t.Errorf("cold build report: misses %v, want at least the %d compile actions", cold.Misses, coldX)
	}
	if ca := cold.CompileActions; ca == nil || ca.Run != coldX || ca.Reused != 0 || !cold.CacheWasEmpty {
		t.Errorf("cold build report: compile actions %+v (cache empty before: %v), want %d run (go build -x's count), 0 reused, a first build",
			ca, cold.CacheWasEmpty, coldX)
	}
	t.Logf("cold: wall %.1fs, melange %.1fs, %d compile actions (go build -x), report %s, %s added",
		coldWall.Seconds(), cold.BuildSeconds, coldX, useFigures(cold), units.FormatSize(cold.BytesAdded))

	// 2. Warm: pull into a fresh dir, then build with no network at all
	// (GOPROXY=off, and a network namespace with nothing in it).
	stdout, stderr, code := w.run(nil, "pull", "--dir", "warm", ref+":"+tag)
	if code != 0 {
		t.Fatalf("melcache pull %s:%s: exit %d\n%s\n%s", ref, tag, code, stdout, stderr)
	}
	if !strings.Contains(stdout, cold.Push.Digest) {
		t.Errorf("melcache pull did not restore the cold build's snapshot %s:\n%s", cold.Push.Digest, stdout)
	}
	warm, warmOut, warmX, warmWall := w.build("warm", true, nil, []string{"--dir", "warm"}, "packages-warm")
	if warmX != 0 {
		t.Errorf("warm build ran %d compile actions (go build -x), want none:\n%s", warmX, warmOut)
	}
	if warm.Hits == nil || *warm.Hits < coldX {
		t.Errorf("warm build report: hits %v, want at least the cold build's %d compile actions reused", warm.Hits, coldX)
	}
	if ca := warm.CompileActions; ca == nil || ca.Run != 0 || ca.Reused != coldX {
		t.Errorf("warm build report: compile actions %+v, want 0 run, %d reused", ca, coldX)
	}
	if warm.ModulesDownloaded != 0 {
		t.Errorf("warm build downloaded %d modules, want 0", warm.ModulesDownloaded)
	}
	t.Logf("warm: wall %.1fs, melange %.1fs, %d compile actions (go build -x), report %s",
		warmWall.Seconds(), warm.BuildSeconds, warmX, useFigures(warm))
	// Issue 13: an unchanged warm build pushes at most 64 KiB, under the
	// key it restored and under a new key (the melange build is offline,
	// so the push runs after it).
	w.pushSmall(ref+":"+tag, "warm build, same key")

	// 3. The same build again, unchanged.
	again, againOut, againX, againWall := w.build("unchanged", true, nil, []string{"--dir", "warm"}, "packages-warm")
	if againX != 0 {
		t.Errorf("unchanged rebuild ran %d compile actions (go build -x), want none:\n%s", againX, againOut)
	}
	if again.Hits == nil || *again.Hits < coldX {
		t.Errorf("unchanged rebuild report: hits %v, want at least the cold build's %d compile actions reused", again.Hits, coldX)
	}
	if ca := again.CompileActions; ca == nil || ca.Run != 0 || ca.Reused != coldX {
		t.Errorf("unchanged rebuild report: compile actions %+v, want 0 run, %d reused", ca, coldX)
	}
	w.pushSmall(ref+":unchanged-"+tag, "unchanged rebuild, new key")
	// 4. doctor, as the README runs it after a build: it sees the
	// env-file the build used, and a warm build's use.
	args := append([]string{"doctor", "--dir", "warm", "--config", "src/melange.yaml", "--"}, w.melangeArgs("packages-warm")...)
	stdout, stderr, code = w.run(nil, args...)
	if code != 0 || strings.Contains("\n"+stdout, "\nfail ") {
		t.Errorf("doctor after a successful build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "GOCACHE=/var/cache/melange/gocache") {
		t.Errorf("doctor does not see the GOCACHE the build used:\n%s", stdout)
	}
	t.Logf("unchanged rebuild: wall %.1fs, melange %.1fs, %d compile actions (go build -x), report %s",
		againWall.Seconds(), again.BuildSeconds, againX, useFigures(again))
}

// pushSmall pushes the warm dir to ref and fails unless it uploads at most
// maxUnchangedPush bytes and no data layer.
func (w *realWorld) pushSmall(ref, what string) {
	w.t.Helper()
	stdout, stderr, code := w.run(nil, "push", "--dir", "warm", "--json", ref)
	if code != 0 {
		w.t.Fatalf("%s: melcache push %s: exit %d\n%s\n%s", what, ref, code, stdout, stderr)
	}
	var res oci.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		w.t.Fatalf("%s: push --json: %v\n%s", what, err, stdout)
	}
	if up := res.DataBytes + res.MetaBytes; up > maxUnchangedPush || res.Layers != 0 {
		w.t.Errorf("%s: push uploaded %s in %d data layers (%+v); want no layer and at most %s",
			what, units.FormatSize(up), res.Layers, res, units.FormatSize(maxUnchangedPush))
	}
	w.t.Logf("%s: push uploaded %d bytes (%d data, %d metadata), %d module-index entries left out, base rule %q",
		what, res.DataBytes+res.MetaBytes, res.DataBytes, res.MetaBytes, res.ModIndex, res.BaseRule)
}

// useFigures is what a report says about the build cache, for the log.
func useFigures(r buildReport) string {
	if r.Hits == nil || r.Misses == nil {
		return "no hits or misses (no mark)"
	}
	s := fmt.Sprintf("%d hits, %d misses", *r.Hits, *r.Misses)
	if r.CompileActions != nil {
		s += fmt.Sprintf("; compile actions: %d run, %d reused", r.CompileActions.Run, r.CompileActions.Reused)
	}
	return s

}
