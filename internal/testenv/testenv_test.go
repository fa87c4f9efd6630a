package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegistryStartsAndLogs(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{})
	if !strings.HasPrefix(r.Host, "127.0.0.1:") {
		t.Fatalf("registry not on loopback: %s", r.Host)
	}
	if _, err := os.Stat(r.LogPath); err != nil {
		t.Fatal(err)
	}
}

func TestMelcacheCacheFixture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds melcache into a fresh cache")
	}
	dir := MelcacheCache(t)
	for _, sub := range []string{"gomodcache/cache/download", "gocache"} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err != nil {
			t.Fatalf("fixture lacks %s: %v", sub, err)
		}
	}
	// A rebuild from the fixture's caches must compile nothing: the fixture
	// is what the other tests use as "a warm cache".
	work := TempDir(t)
	CopyTree(t, dir, filepath.Join(work, "c"))
	n, out := GoBuild(t, RepoRoot(), GoEnv{ModCache: filepath.Join(work, "c", "gomodcache"), Cache: filepath.Join(work, "c", "gocache")}, "./cmd/melcache")
	if n != 0 {
		t.Fatalf("warm rebuild compiled %d packages:\n%s", n, tail(out, 2000))
	}
}
