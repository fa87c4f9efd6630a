package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gofrs/flock"
)

// melcachePkg is the import path of the CLI that MelcacheBinary builds.
const melcachePkg = "github.com/melcache/melcache/cmd/melcache"

// Binary builds pkg (an import path of this module, or of a module in its
// build list) into FixturesDir()/name-HASH/file and returns its path. It is
// built once per key and Go version and then shared by every test binary,
// run, worktree and clone, so key must name everything the binary is built
// from (e.g. SourceHash). The directory is world-readable: tests run the
// binary as other users.
func Binary(t testing.TB, name, file, pkg, key string) string {
	t.Helper()
	dir := filepath.Join(FixturesDir(), name+"-"+shortHash(runtime.Version()+"\x00"+pkg+"\x00"+key))
	bin := filepath.Join(dir, file)
	// Fast path without the lock: a built binary is only ever renamed into
	// place complete, and a test running as another user may not be able to
	// open the lock file.
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(FixturesDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	fl := flock.New(dir + ".lock")
	if err := fl.Lock(); err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := bin + ".tmp"
	cmd := exec.Command("go", "build", "-o", tmp, pkg)
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// MelcacheBinary returns the melcache CLI built from this checkout, shared
// by every test that runs it as a program (keyed on SourceHash, so a
// test-only edit does not rebuild it).
func MelcacheBinary(t testing.TB) string {
	t.Helper()
	return Binary(t, "melcache-bin", "melcache", melcachePkg, SourceHash())
}

// StaticMelcacheBinary is MelcacheBinary built with CGO_ENABLED=0: a static
// binary a melange guest (which has no host libc) can run, as the
// `melcache build --cacheprog` forwarder.
func StaticMelcacheBinary(t testing.TB) string {
	t.Helper()
	t.Setenv("CGO_ENABLED", "0")
	return Binary(t, "melcache-static", "melcache", melcachePkg, SourceHash()+"\x00CGO_ENABLED=0")
}
