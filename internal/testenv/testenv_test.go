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

func TestRealCacheFixture(t *testing.T) {
	dir := RealCache(t)
	for _, sub := range []string{"gomodcache/cache/download", "gocache"} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err != nil {
			t.Fatalf("fixture lacks %s: %v", sub, err)
		}
	}
	// A rebuild from the fixture's caches must compile nothing: the fixture
	// is what the other tests use as "a warm cache".
	work := TempDir(t)
	CopyTree(t, dir, filepath.Join(work, "c"))
	n, out := GoBuild(t, RealCacheModule(), GoEnv{ModCache: filepath.Join(work, "c", "gomodcache"), Cache: filepath.Join(work, "c", "gocache")}, ".")
	if n != 0 {
		t.Fatalf("warm rebuild compiled %d packages:\n%s", n, tail(out, 2000))
	}
}

// TestFixtureKeys: fixture keys name the sources, not where the clone sits
// or what the tests say: test files, testdata and docs do not count, go.sum
// and non-test sources do.
func TestFixtureKeys(t *testing.T) {
	for rel, want := range map[string]bool{
		"go.sum":                         true,
		"go.mod":                         true,
		"oci/push.go":                    true,
		"cmd/melcache/main.go":           true,
		"oci/push_test.go":               false,
		"oci/testdata/x.go":              false,
		"internal/testenv/testdata/a.go": false,
		"docs/x.go":                      false,
		"README.md":                      false,
	} {
		if got := isBuildSource(rel); got != want {
			t.Errorf("isBuildSource(%q) = %v, want %v", rel, got, want)
		}
	}
	// The same files under two different roots hash alike; a change to
	// one file changes the hash.
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sub", "f.go"), []byte("package f\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ha, hb := HashFiles(nil, a), HashFiles(nil, b)
	if ha != hb {
		t.Fatalf("same files at %s and %s hash differently", a, b)
	}
	if err := os.WriteFile(filepath.Join(b, "sub", "f.go"), []byte("package g\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if HashFiles(nil, b) == ha {
		t.Fatal("an edited file kept the hash")
	}
	if SourceHash() != HashFiles(isBuildSource, RepoRoot()) {
		t.Fatal("SourceHash is not stable")
	}
}
