package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/mount"
)

// swapFixture stages a new tree for each cache of l; the live caches named
// in hadOld hold an old tree first. It returns the forward renames of the
// swap in order, as swapIn makes them.
func swapFixture(t *testing.T, l mount.Layout, hadOld map[mount.Cache]bool) [][2]string {
	t.Helper()
	var steps [][2]string
	for _, c := range l.Caches() {
		writeT(t, filepath.Join(stagedNew(l, c), "new-file"), []byte("new"), 0o644)
		if hadOld[c] {
			writeT(t, filepath.Join(l.CacheDir(c), "old-file"), []byte("old"), 0o644)
			steps = append(steps, [2]string{l.CacheDir(c), stagedOld(l, c)})
		}
		steps = append(steps, [2]string{stagedNew(l, c), l.CacheDir(c)})
	}
	if err := os.MkdirAll(filepath.Join(stagingDir(l), "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	return steps
}

// TestUnswapFromEveryStep: whatever number of the swap's renames were made
// when it failed (or when a crash hit the undo, whose intermediate states
// are of the same shapes), recovering an "unswap" journal gives the old
// caches, a cache that did not exist before included, and leaves no
// staging or journal.
func TestUnswapFromEveryStep(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	for _, hadOld := range []map[mount.Cache]bool{
		{mount.GoModCache: true, mount.GoCache: true},
		{mount.GoModCache: true}, // gocache is new
	} {
		for k := 0; ; k++ {
			l := newLayout(t)
			for _, c := range l.Caches() {
				os.RemoveAll(l.CacheDir(c))
			}
			steps := swapFixture(t, l, hadOld)
			if k > len(steps) {
				break
			}
			for _, s := range steps[:k] {
				if err := os.Rename(s[0], s[1]); err != nil {
					t.Fatal(err)
				}
			}
			j := journal{Phase: phaseUnswap, Caches: l.Caches(), Digest: "sha256:abc", Error: "injected"}
			if err := writeJournal(l, j); err != nil {
				t.Fatal(err)
			}
			did, err := recoverJournal(l)
			if err != nil || !strings.Contains(did, "rolled back the failed swap") {
				t.Fatalf("%v, %d renames: Recover = %q, %v", hadOld, k, did, err)
			}
			for _, c := range l.Caches() {
				_, oldErr := os.Stat(filepath.Join(l.CacheDir(c), "old-file"))
				_, newErr := os.Stat(filepath.Join(l.CacheDir(c), "new-file"))
				_, dirErr := os.Lstat(l.CacheDir(c))
				switch {
				case newErr == nil:
					t.Errorf("%v, %d renames: %s is the new cache after the undo", hadOld, k, c)
				case hadOld[c] && oldErr != nil:
					t.Errorf("%v, %d renames: %s lost its old tree: %v", hadOld, k, c, oldErr)
				case !hadOld[c] && dirErr == nil:
					t.Errorf("%v, %d renames: %s did not exist before, but does now", hadOld, k, c)
				}
			}
			if exists(stagingDir(l)) || exists(journalPath(l)) {
				t.Errorf("%v, %d renames: staging or journal left", hadOld, k)
			}
		}
	}
}

// TestSwapRefusesPlantedStagingLink: a staged cache that is a link (the
// build can write .melcache) is never renamed into DIR.
func TestSwapRefusesPlantedStagingLink(t *testing.T) {
	l := newLayout(t)
	victim := t.TempDir()
	if err := os.MkdirAll(filepath.Join(stagingDir(l), "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, stagedNew(l, mount.GoCache)); err != nil {
		t.Fatal(err)
	}
	if err := writeJournal(l, journal{Phase: phaseSwap, Caches: []mount.Cache{mount.GoCache}}); err != nil {
		t.Fatal(err)
	}
	_, err := recoverJournal(l)
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Recover with a linked staged cache: %v; want a refusal", err)
	}
	if fi, err := os.Lstat(l.CacheDir(mount.GoCache)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		t.Fatalf("the planted link was moved into place as %s", l.CacheDir(mount.GoCache))
	}
}
