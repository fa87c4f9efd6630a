package oci

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// fetchSwapDir is a dir whose fetch cache has a (kept), b (to be dropped by
// a --replace) and x (whose snapshot copy has another mode), and a file
// that is no cache's.
func fetchSwapDir(t *testing.T) (l mount.Layout, a, b, x string) {
	l = newLayout(t)
	a, b = addFetch(t, l, "kept\n", false), addFetch(t, l, "dropped\n", true)
	x = addFetch(t, l, "same bytes, other mode\n", false)
	os.Chmod(filepath.Join(l.Dir, x), 0o600)
	writeT(t, filepath.Join(l.Dir, "x86_64", "APKINDEX.tar.gz"), []byte("apk index"), 0o644)
	return l, a, b, x
}

// TestFetchSwapRecovers: a fetch swap interrupted half way (a live file
// moved aside, its replacement not linked in yet; a new file not linked
// in) is finished by recovery under journal "swap", and undone exactly
// under "unswap"; DIR's other files are never touched.
func TestFetchSwapRecovers(t *testing.T) {
	for _, phase := range []string{phaseSwap, phaseUnswap} {
		t.Run(phase, func(t *testing.T) {
			l, a, b, x := fetchSwapDir(t)
			before := dirState(t, l.Dir)
			c := "sha256:" + sha([]byte("new\n"))
			nw, old, drop := stagedNew(l, mount.FetchCache), stagedOld(l, mount.FetchCache), stagedDrop(l, mount.FetchCache)
			writeT(t, filepath.Join(nw, x), []byte("same bytes, other mode\n"), 0o644)
			writeT(t, filepath.Join(nw, c), []byte("new\n"), 0o644)
			writeT(t, filepath.Join(drop, b), nil, 0o600)
			// Interrupted: x moved aside, nothing linked in yet.
			if err := os.MkdirAll(old, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(l.Dir, x), filepath.Join(old, x)); err != nil {
				t.Fatal(err)
			}
			if err := writeJournal(l, journal{Phase: phase, Caches: []mount.Cache{mount.FetchCache}, Digest: "sha256:abc"}); err != nil {
				t.Fatal(err)
			}
			did, err := RecoverInterrupted(context.Background(), l, RecoverOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(did)
			after := dirState(t, l.Dir)
			if phase == phaseUnswap {
				diffSums(t, before, after)
			} else {
				if _, ok := after[b]; ok {
					t.Errorf("%s was not dropped", b)
				}
				if !strings.HasPrefix(after[x], "-rw-r--r--") || after[c] == "" || after[a] != before[a] {
					t.Errorf("after the swap: x %q, c %q, a %q (was %q)", after[x], after[c], after[a], before[a])
				}
				if after["x86_64/APKINDEX.tar.gz"] != before["x86_64/APKINDEX.tar.gz"] {
					t.Error("the swap touched a file of DIR that is no cache's")
				}
			}
			if RecoveryPending(l) {
				t.Error("recovery left the journal or staging dir")
			}
		})
	}
}

// TestFetchSwapFailureRollsBack: a rename failing in the fetch swap, after
// the directory caches were swapped, puts every cache back as it was.
func TestFetchSwapFailureRollsBack(t *testing.T) {
	src := makeCache(t, t.TempDir())
	addFetch(t, src, "from the snapshot\n", false)
	s := newMemStore()
	mustPush(t, src, s, "t", Options{})
	dst, _, _, _ := fetchSwapDir(t)
	writeT(t, filepath.Join(dst.CacheDir(mount.GoCache), "README"), []byte("mine\n"), 0o644)
	before := dirState(t, dst.Dir)
	t.Setenv(failEnv, "swap-fetch")
	_, err := Pull(context.Background(), dst, s, "t", Options{Replace: true})
	if err == nil || !strings.Contains(err.Error(), "put back") {
		t.Fatalf("pull with a failing fetch swap: %v", err)
	}
	diffSums(t, before, dirState(t, dst.Dir))
	if RecoveryPending(dst) {
		t.Error("the undone pull left its journal or staging dir")
	}
}

// TestFetchEntriesRefused: a snapshot index may hold only files named
// sha256:<hex> or sha512:<hex> in the fetch cache; a restore renames them
// into DIR itself.
func TestFetchEntriesRefused(t *testing.T) {
	for _, e := range []Entry{
		{Cache: mount.FetchCache, Path: "notes.txt", Type: TypeFile},
		{Cache: mount.FetchCache, Path: "sha256:" + strings.Repeat("a", 64), Type: TypeDir},
		{Cache: mount.FetchCache, Path: "x/sha256:" + strings.Repeat("a", 64), Type: TypeFile},
		{Cache: mount.FetchCache, Path: "sha256:" + strings.Repeat("A", 64), Type: TypeFile},
	} {
		if err := checkFetchEntry(&e); err == nil {
			t.Errorf("%s %q accepted", e.Type, e.Path)
		}
	}
	ok := Entry{Cache: mount.FetchCache, Path: "sha512:" + strings.Repeat("0", 128), Type: TypeFile}
	if err := checkFetchEntry(&ok); err != nil {
		t.Error(err)
	}
}

// TestRestoredFilesGoToTheirOwners: a root pull gives npm's files to the
// owner of DIR/npm, as the Go caches', and fetch-cache files, which have no
// root, to DIR's owner.
func TestRestoredFilesGoToTheirOwners(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	testenv.RequireRoot(t, "chown to other users")
	src := makeCache(t, t.TempDir())
	name := addFetch(t, src, "a source\n", false)
	writeT(t, filepath.Join(src.CacheDir(mount.NPMCache), "_cacache", "f"), []byte("x"), 0o644)
	s := newMemStore()
	mustPush(t, src, s, "t", Options{})
	dst := newLayout(t)
	if err := os.MkdirAll(dst.CacheDir(mount.NPMCache), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dst.Dir, 1000, 1000)
	os.Chown(dst.CacheDir(mount.NPMCache), 1001, 1001)
	if _, err := Pull(context.Background(), dst, s, "t", Options{}); err != nil {
		t.Fatal(err)
	}
	for p, uid := range map[string]int{filepath.Join(dst.Dir, name): 1000, filepath.Join(dst.CacheDir(mount.NPMCache), "_cacache", "f"): 1001} {
		if fo := ownerOf(p); fo == nil || fo.uid != uid {
			t.Errorf("%s belongs to %+v, want uid %d", p, fo, uid)
		}
	}
}

// TestFetchSwapRefusesPlantedStaging: under a "swap" journal, a link the
// build planted for staging/old/fetch (into DIR itself) or a staged name
// that is not a fetch-cache name stops the swap, which is then undone:
// nothing of DIR moves, and the error names what was planted (the journal
// stays, as for a planted link in the directory caches' staging).
func TestFetchSwapRefusesPlantedStaging(t *testing.T) {
	for _, plant := range []string{"old-link", "bad-name"} {
		t.Run(plant, func(t *testing.T) {
			l, _, _, x := fetchSwapDir(t)
			before := dirState(t, l.Dir)
			nw := stagedNew(l, mount.FetchCache)
			writeT(t, filepath.Join(nw, x), []byte("other\n"), 0o644)
			if plant == "old-link" {
				os.MkdirAll(filepath.Dir(stagedOld(l, mount.FetchCache)), 0o755)
				if err := os.Symlink(l.Dir, stagedOld(l, mount.FetchCache)); err != nil {
					t.Fatal(err)
				}
			} else {
				writeT(t, filepath.Join(nw, "notes.txt"), []byte("x"), 0o644)
			}
			if err := writeJournal(l, journal{Phase: phaseSwap, Caches: []mount.Cache{mount.FetchCache}}); err != nil {
				t.Fatal(err)
			}
			_, err := RecoverInterrupted(context.Background(), l, RecoverOptions{})
			if err == nil || !strings.Contains(err.Error(), "planted") {
				t.Fatalf("recovery with a planted staging entry: %v; want a refusal naming it", err)
			}
			diffSums(t, before, dirState(t, l.Dir))
		})
	}
}

// TestDefaultCaches: a push holds the Go caches and every other cache
// present; --only takes any registry name.
func TestDefaultCaches(t *testing.T) {
	l := newLayout(t)
	if got, _ := defaultCaches(l); !slices.Equal(got, []mount.Cache{mount.GoModCache, mount.GoCache}) {
		t.Errorf("empty dir: %v", got)
	}
	os.MkdirAll(l.CacheDir(mount.NPMCache), 0o755)
	writeT(t, filepath.Join(l.Dir, "sha256:NOTHEX"), []byte("x"), 0o644)
	if got, _ := defaultCaches(l); !slices.Equal(got, []mount.Cache{mount.GoModCache, mount.GoCache, mount.NPMCache}) {
		t.Errorf("with npm/ and a file that is no fetch file: %v", got)
	}
	addFetch(t, l, "src\n", false)
	if got, _ := defaultCaches(l); !slices.Equal(got, []mount.Cache{mount.GoModCache, mount.GoCache, mount.NPMCache, mount.FetchCache}) {
		t.Errorf("with npm/ and a fetch file: %v", got)
	}
	if got, err := ParseOnly("fetch,npm"); err != nil || !slices.Equal(got, []mount.Cache{mount.NPMCache, mount.FetchCache}) {
		t.Errorf("ParseOnly(fetch,npm) = %v, %v", got, err)
	}
	if _, err := ParseOnly("yarn"); err == nil {
		t.Error("ParseOnly(yarn) accepted")
	}
}
