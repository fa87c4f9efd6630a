package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// TestDemo runs the README's main job, `melcache demo`, from the repository
// root exactly as a user would, except that modules come from the host's
// module cache first (a file:// proxy in front of the configured GOPROXY),
// so the test needs no network when the host has them. It checks that the
// warm build, restored into a new dir from the snapshot, compiles nothing
// and hits the cache, and that the demo leaves nothing behind: no temporary
// dirs and nothing in the user's embedded store.
func TestDemo(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (the demo: real Go builds, cold and warm)")
	hostMod, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	proxy := "file://" + filepath.Join(strings.TrimSpace(string(hostMod)), "cache", "download")
	if p, _ := exec.Command("go", "env", "GOPROXY").Output(); len(bytes.TrimSpace(p)) > 0 && string(bytes.TrimSpace(p)) != "off" {
		proxy += "," + string(bytes.TrimSpace(p))
	}
	tmp, xdg := t.TempDir(), t.TempDir()
	t.Setenv("GOPROXY", proxy)
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOFLAGS", "")
	t.Setenv("TMPDIR", tmp)
	t.Setenv("XDG_CACHE_HOME", xdg)
	t.Chdir(testenv.RepoRoot())

	var stdout, stderr bytes.Buffer
	g := &globals{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	if code := run(context.Background(), g, []string{"demo", "--json"}); code != 0 {
		t.Fatalf("melcache demo: exit %d\n%s", code, stderr.String())
	}
	var r demoReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("demo --json: %v\n%s", err, stdout.String())
	}
	if r.Cold.Compiles == 0 || r.Cold.Misses == 0 {
		t.Errorf("cold build compiled %d packages with %d misses: not cold", r.Cold.Compiles, r.Cold.Misses)
	}
	if r.Warm.Compiles != 0 || r.Warm.Hits == 0 {
		t.Errorf("warm build compiled %d packages with %d hits, want 0 compiles and hits", r.Warm.Compiles, r.Warm.Hits)
	}
	if r.Push == nil || r.Pull == nil || r.Pull.Digest != r.Push.Digest {
		t.Errorf("the warm dir was not restored from the pushed snapshot: push %+v, pull %+v", r.Push, r.Pull)
	}
	if r.Cold.Dir == r.Warm.Dir {
		t.Errorf("warm build reused the cold dir %s", r.Cold.Dir)
	}
	if !strings.Contains(r.Source, filepath.Join("examples", "hello-go")) {
		t.Errorf("demo built %s, want examples/hello-go", r.Source)
	}
	if _, err := exec.LookPath("bwrap"); err == nil && r.Sandbox != "bwrap --unshare-net" {
		t.Errorf("bwrap is installed but the demo ran with sandbox %q", r.Sandbox)
	}
	t.Logf("cold %.1fs (%d compiles), warm %.1fs (%d hits), %.0f%%", r.Cold.TotalSeconds, r.Cold.Compiles, r.Warm.TotalSeconds, r.Warm.Hits, r.WarmPercent)

	// Nothing left behind.
	for _, d := range []string{tmp, xdg} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("demo left %d entries in %s (first %s)", len(ents), d, ents[0].Name())
		}
	}

	// The table a user sees.
	var table bytes.Buffer
	printDemo(&globals{stdout: &table}, &r)
	for _, want := range []string{"cold", "warm", "compile actions", "GOCACHE hits", "warm (restore + build) took"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("demo table lacks %q:\n%s", want, table.String())
		}
	}
}

func mustLayout(t *testing.T, dir string) mount.Layout {
	t.Helper()
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
