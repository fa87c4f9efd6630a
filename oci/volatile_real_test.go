package oci

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// actionFiles reads every GOCACHE action entry of l: rel path -> content.
func actionFiles(t testing.TB, l mount.Layout) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	gc := l.CacheDir(mount.GoCache)
	err := filepath.WalkDir(gc, func(p string, d os.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, "-a") {
			return err
		}
		b, err := os.ReadFile(p)
		out[gcRel(l, p)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRealWarmRebuildPushesNothing: a real warm `go build` of the real
// cache's program rewrites action entries with only a new time field (and
// adds module-index entries); the push after it uploads nothing, and,
// with the stat cache, hashes only the files the build touched.
func TestRealWarmRebuildPushesNothing(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(testenv.TempDir(t), "dir")
	testenv.CopyTree(t, testenv.RealCache(t), dir)
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemStore()
	first, err := Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	before, stats := actionFiles(t, l), fileStats(t, l)
	if n, out := testenv.GoBuild(t, testenv.RealCacheModule(), offlineEnv(l), "."); n != 0 {
		t.Fatalf("warm build compiled %d packages:\n%s", n, tailOf(out))
	}
	retimed := 0
	for rel, b := range actionFiles(t, l) {
		old, ok := before[rel]
		id, _ := mount.ActionID(rel)
		a, err := mount.ParseActionEntry(old, id)
		if ok && err == nil && string(b) != string(old) && string(mount.ActionWithTime(b, a.Time.UnixNano())) == string(old) {
			retimed++
		}
	}
	if retimed == 0 {
		t.Fatal("the warm build rewrote no action entry's time field alone: this test no longer exercises the rule")
	}
	res, err := Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || res.DataBytes+res.MetaBytes != 0 || res.Digest != first.Digest {
		t.Fatalf("push after a warm build (%d action entries retimed): %+v; want unchanged, nothing uploaded", retimed, res)
	}
	// Go refreshes the use mark (mtime, hence ctime) of every entry it
	// uses that is over an hour old, and rewrote the retimed ones: those,
	// and only those, are hashed again.
	changed, total := 0, 0
	for k, st := range fileStats(t, l) {
		total++
		if old, ok := stats[k]; !ok || old != st {
			changed++
		}
	}
	if res.Hashed != changed || res.StatCached != total-changed {
		t.Fatalf("push after a warm build: hashed %d files, %d from the stat cache; %d of %d files changed stat",
			res.Hashed, res.StatCached, changed, total)
	}
	again, err := Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Unchanged || again.Hashed != 0 {
		t.Fatalf("push of the unchanged dir: %+v; want unchanged, nothing hashed", again)
	}
	t.Logf("warm build retimed %d action entries; push: unchanged, hashed %d of %d files (use marks refreshed), %d module-index entries left out; then 0 hashed",
		retimed, res.Hashed, total, res.ModIndex)
}

// fileStats is what a scan sees of every file of l's caches: (cache,
// path) -> the stat cache's key fields.
func fileStats(t testing.TB, l mount.Layout) map[entryKey]fileStat {
	t.Helper()
	var st ScanStats
	var entries []Entry
	for _, c := range l.Caches() {
		var err error
		if entries, err = walkCache(l, c, entries, &st); err != nil {
			t.Fatal(err)
		}
	}
	out := map[entryKey]fileStat{}
	for _, e := range entries {
		if e.Type == TypeFile {
			out[e.id()] = fileStat{size: e.st.size, mtime: e.st.mtime, ctime: e.st.ctime, ino: e.st.ino}
		}
	}
	return out
}
