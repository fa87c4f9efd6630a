package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// SharedEnv names the variable that points the tests at the shared data
// directory (the melange corpus, the real melange). Without it the directory
// is ../shared next to the repository, which is where it sits beside the
// main checkout; a worktree or clone elsewhere sets SharedEnv instead.
const SharedEnv = "MELCACHE_SHARED"

// SharedDir returns the shared data directory: $MELCACHE_SHARED, or ../shared
// next to the repository. It may not exist; see SharedPath.
func SharedDir() string {
	if d := os.Getenv(SharedEnv); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "..", "shared")
}

// SharedPath returns rel (slash-separated, e.g. "corpus/melange") under the
// shared data directory, or an error naming where it looked and how to
// provide it when it is not there.
func SharedPath(rel string) (string, error) {
	p := filepath.Join(SharedDir(), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("shared test data %s not found at %s (set %s to the shared data directory, or put it at ../shared next to the repository): %w",
			rel, p, SharedEnv, err)
	}
	return p, nil
}

// Shared returns rel under the shared data directory. Every test that reads
// ../shared goes through it: outside CI a missing directory skips the test
// with the reason (a fresh clone has nothing beside it, and its tests pass);
// under CI=true it fails the test, because CI provides the data and a skip
// there would hide that the corpus tests did not run.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p, err := SharedPath(rel)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("CI=true: %v", err)
	}
	t.Skip(err)
	return ""
}
