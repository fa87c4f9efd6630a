package build

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
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

// TestCacheProgLazyPullBwrap: build --cacheprog --pull REF leaves the
// gocache to the bridge, which fetches each object the guest's go asks for
// from the snapshot by range (the cache dir starts empty, nothing is
// pulled for the gocache); the binary is plain go's and the report counts
// the remote fetches.
func TestCacheProgLazyPullBwrap(t *testing.T) {
	testenv.SkipShort(t, "real Go build")
	bwrap := testenv.RequireTool(t, "bwrap")
	root := testenv.RepoRoot()
	src := filepath.Join(root, "cacheprog", "testdata", "hello")
	seed := testenv.SeedCache(t, filepath.Join(root, "cacheprog", "testdata", "seed"))
	tmp := t.TempDir()
	out := filepath.Join(tmp, "hello")

	// The snapshot: seed's cache plus hello built by plain go.
	full, err := mount.New(filepath.Join(tmp, "full"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.CopyTree(t, filepath.Join(seed, "gocache"), full.CacheDir(mount.GoCache))
	os.MkdirAll(full.CacheDir(mount.GoModCache), 0o755)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out+".plain", ".")
	cmd.Dir, cmd.Env = src, guestEnv(map[string]string{"GOCACHE": full.CacheDir(mount.GoCache), "GOMODCACHE": t.TempDir()})
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plain go build: %v\n%s", err, b)
	}
	layout := filepath.Join(tmp, "layout")
	if _, err := oci.Push(context.Background(), full, oci.NewLayoutStore(layout), "t", oci.Options{}); err != nil {
		t.Fatal(err)
	}

	f := newFixture(t)
	f.cfg.CacheProg, f.cfg.CacheProgBinary = true, testenv.StaticMelcacheBinary(t)
	f.cfg.Pull = "oci:" + layout + ":t"
	f.runner.build = func(argv []string) {
		if n := countEntries(f.cfg.Layout.CacheDir(mount.GoCache)); n != 0 {
			t.Errorf("%d entries in the gocache before the build: it was pulled", n)
		}
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
	rep, err := f.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := rep.CacheProg
	if c == nil || c.RemoteFetches == 0 || c.RemoteRequests == 0 || c.Hits == 0 || c.Errors != 0 {
		t.Fatalf("lazy build through the bridge: %+v (warnings %q)", c, f.warnings)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(out + ".plain")
	if len(got) == 0 || !bytes.Equal(got, want) {
		t.Errorf("binary through the lazy bridge (%d bytes) differs from plain go's (%d bytes)", len(got), len(want))
	}
}

// countEntries counts the GOCACHE entries (-a, -d) under dir (0 when it
// is missing).
func countEntries(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && (strings.HasSuffix(p, "-a") || strings.HasSuffix(p, "-d")) {
			n++
		}
		return nil
	})
	return n
}
