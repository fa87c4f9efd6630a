package build

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// guestEnv is the environment of the guest's go command: the host's,
// without its Go settings, plus the env-file's, offline.
func guestEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GO") && !strings.HasPrefix(kv, "CGO") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return append(env, "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=-mod=mod -buildvcs=false")
}

// TestCacheProgBridgeBwrap runs the bridge as melange's bubblewrap runner
// would use it, without melange: the guest is bwrap with DIR mounted at
// /var/cache/melange and DIR's host path hidden (a tmpfs over it), its go
// command started with the env-file's GOCACHEPROG (the static forwarder
// placed in DIR/.melcache). So every DiskPath the host answers must be a
// guest path. The first build stores hello's packages through the host,
// the second is all hits, and the binary is plain go's.
func TestCacheProgBridgeBwrap(t *testing.T) {
	testenv.SkipShort(t, "real Go build")
	bwrap := testenv.RequireTool(t, "bwrap")
	root := testenv.RepoRoot()
	src := filepath.Join(root, "cacheprog", "testdata", "hello")
	seed := testenv.SeedCache(t, filepath.Join(root, "cacheprog", "testdata", "seed"))
	f := newFixture(t)
	f.cfg.CacheProg, f.cfg.CacheProgBinary = true, testenv.StaticMelcacheBinary(t)
	testenv.CopyTree(t, filepath.Join(seed, "gocache"), f.cfg.Layout.CacheDir(mount.GoCache))
	out := filepath.Join(t.TempDir(), "hello")
	f.runner.build = func(argv []string) {
		vars := envFileVars(t, argv)
		cmd := exec.Command(bwrap, "--dev-bind", "/", "/", "--tmpfs", "/var/cache",
			"--bind", f.cfg.Layout.Dir, mount.GuestRoot, "--tmpfs", filepath.Dir(f.cfg.Layout.Dir),
			"--unshare-net", "--die-with-parent", "--chdir", src, "--",
			"go", "build", "-trimpath", "-o", out, ".")
		cmd.Env = guestEnv(vars)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go build in the guest: %v\n%s", err, b)
		}
	}
	first, err := f.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := first.CacheProg
	if c == nil || c.Misses == 0 || c.Puts == 0 || c.Hits == 0 || c.Errors != 0 {
		t.Fatalf("first build through the bridge: %+v (warnings %q)", c, f.warnings)
	}
	second, err := f.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c := second.CacheProg; c == nil || c.Gets == 0 || c.Hits != c.Gets || c.Puts != 0 || c.Errors != 0 {
		t.Errorf("second build through the bridge: %+v, want all hits", c)
	}
	plain := filepath.Join(t.TempDir(), "gocache")
	testenv.CopyTree(t, filepath.Join(seed, "gocache"), plain)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out+".plain", ".")
	cmd.Dir, cmd.Env = src, guestEnv(map[string]string{"GOCACHE": plain, "GOMODCACHE": t.TempDir()})
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plain go build: %v\n%s", err, b)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(out + ".plain")
	if len(got) == 0 || !bytes.Equal(got, want) {
		t.Errorf("binary through the bridge (%d bytes) differs from plain go's (%d bytes)", len(got), len(want))
	}
}
