package build

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/cacheprog"
)

// envFileVars reads the --env-file melange was given.
func envFileVars(t *testing.T, argv []string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for i, a := range argv {
		if a != "--env-file" || i+1 >= len(argv) {
			continue
		}
		f, err := os.Open(argv[i+1])
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				vars[k] = v
			}
		}
		f.Close()
	}
	return vars
}

// staticELF is a statically linked executable for this machine that is not
// melcache: enough for the checks, which do not run it.
func staticELF(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if err := cacheprog.CheckForwarder(p, "amd64"); err == nil {
			return p
		}
	}
	t.Skip("no static busybox (Debian package busybox-static) to stand in for a static forwarder")
	return ""
}

// TestCacheProgEnvAndPlacement: with --cacheprog the env-file starts the
// forwarder bare with its socket in ForwardEnv and keeps GOCACHE; the
// forwarder is placed in DIR/.melcache/cacheprog with its source's digest,
// replacing a link planted there (the target is not written); the socket
// exists while melange runs and is gone after.
func TestCacheProgEnvAndPlacement(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc: the socket is bound through /proc/self/fd")
	}
	f := newFixture(t)
	f.cfg.CacheProg, f.cfg.CacheProgBinary = true, staticELF(t)
	f.cfg.MelangeArgs.Arch = "x86_64"
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("not yours"), 0o644); err != nil {
		t.Fatal(err)
	}
	bridge := filepath.Join(f.cfg.Layout.State, "cacheprog")
	if err := os.MkdirAll(bridge, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(bridge, "melcache")); err != nil {
		t.Fatal(err)
	}
	var vars map[string]string
	sockSeen := false
	f.runner.build = func(argv []string) {
		vars = envFileVars(t, argv)
		fi, err := os.Lstat(filepath.Join(bridge, "sock"))
		sockSeen = err == nil && fi.Mode()&os.ModeSocket != 0
	}
	rep, err := f.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if vars["GOCACHEPROG"] != "/var/cache/melange/.melcache/cacheprog/melcache" ||
		vars[cacheprog.ForwardEnv] != "/var/cache/melange/.melcache/cacheprog/sock" ||
		vars["GOCACHE"] != "/var/cache/melange/gocache" {
		t.Errorf("env-file: %v", vars)
	}
	if !sockSeen {
		t.Error("no socket in DIR/.melcache/cacheprog while melange ran")
	}
	if _, err := os.Lstat(filepath.Join(bridge, "sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after the build: %v", err)
	}
	if rep.CacheProg == nil {
		t.Error("no cacheprog counts in the report")
	}
	if b, _ := os.ReadFile(victim); string(b) != "not yours" {
		t.Errorf("the planted link's target was written: %q", b)
	}
	placed, err := os.ReadFile(filepath.Join(bridge, "melcache"))
	src, _ := os.ReadFile(f.cfg.CacheProgBinary)
	if err != nil || sha256.Sum256(placed) != sha256.Sum256(src) {
		t.Errorf("placed forwarder differs from %s: %v", f.cfg.CacheProgBinary, err)
	}
}

// TestCacheProgFallbacks: qemu warns and builds without cacheprog (no
// GOCACHEPROG in the env-file); a --cacheprog-binary that is not a static
// binary for the guest's arch is a usage error before anything changes.
func TestCacheProgFallbacks(t *testing.T) {
	f := newFixture(t)
	f.cfg.CacheProg, f.cfg.MelangeArgs.Runner = true, "qemu"
	var vars map[string]string
	f.runner.build = func(argv []string) { vars = envFileVars(t, argv) }
	rep, err := f.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vars["GOCACHEPROG"]; ok || vars["GOCACHE"] == "" || rep.CacheProg != nil {
		t.Errorf("qemu: env-file %v, report %+v", vars, rep.CacheProg)
	}
	if !strings.Contains(strings.Join(f.warnings, "\n"), "--runner qemu cannot reach a host unix socket") {
		t.Errorf("qemu: warnings %q", f.warnings)
	}

	for _, tc := range []struct{ bin, arch, want string }{
		{"/bin/sh", "x86_64", "dynamically linked"},
		{staticELF(t), "aarch64", "the guest is aarch64"},
		{f.cfg.Config, "x86_64", "not an ELF executable"},
	} {
		g := newFixture(t)
		g.cfg.CacheProg, g.cfg.CacheProgBinary, g.cfg.MelangeArgs.Arch = true, tc.bin, tc.arch
		_, err := g.run(t, context.Background())
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--cacheprog-binary %s for %s: %v, want a usage error saying %q", tc.bin, tc.arch, err, tc.want)
		}
		if len(g.runner.calls) != 0 {
			t.Errorf("melange ran despite a bad --cacheprog-binary")
		}
		if _, err := os.Stat(g.cfg.Layout.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cache dir created despite a bad --cacheprog-binary: %v", err)
		}
	}
}
