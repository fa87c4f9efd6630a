package oci

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
	"golang.org/x/mod/sumdb/dirhash"
)

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func writeT(t testing.TB, p string, b []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// makeCache builds a small but faithful pair of caches in dir: a module
// with zip, .ziphash and a read-only extracted tree; GOCACHE -a and -d
// entries, one -d still being written, and the volatile files Go keeps.
func makeCache(t testing.TB, dir string) mount.Layout {
	t.Helper()
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mc, gc := l.CacheDir(mount.GoModCache), l.CacheDir(mount.GoCache)
	// Gopkg.lock: files in module trees are never excluded, whatever
	// their name (the tree's .ziphash covers them).
	files := map[string]string{"go.mod": "module example.com/m\n", "a.go": "package m\n\nconst X = 1\n", "Gopkg.lock": "# dep\n"}
	dl := filepath.Join(mc, "cache/download/example.com/m/@v")
	zf := filepath.Join(dl, "v1.0.0.zip")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(zf)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, n := range []string{"Gopkg.lock", "a.go", "go.mod"} {
		w, _ := zw.Create("example.com/m@v1.0.0/" + n)
		w.Write([]byte(files[n]))
	}
	zw.Close()
	f.Close()
	zh, err := dirhash.HashZip(zf, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	writeT(t, filepath.Join(dl, "v1.0.0.ziphash"), []byte(zh), 0o644)
	writeT(t, filepath.Join(dl, "v1.0.0.mod"), []byte(files["go.mod"]), 0o644)
	writeT(t, filepath.Join(dl, "v1.0.0.info"), []byte(`{"Version":"v1.0.0"}`), 0o644)
	writeT(t, filepath.Join(dl, "list"), []byte("v1.0.0\n"), 0o644)
	writeT(t, filepath.Join(dl, "v1.0.0.lock"), nil, 0o644)
	writeT(t, filepath.Join(mc, "cache/lock"), nil, 0o644)
	tree := filepath.Join(mc, "example.com/m@v1.0.0")
	for n, c := range files {
		writeT(t, filepath.Join(tree, n), []byte(c), 0o444)
	}
	os.Chmod(tree, 0o555)

	writeT(t, filepath.Join(gc, "README"), []byte("This directory holds cached build artifacts from the Go build system.\n"), 0o644)
	writeT(t, filepath.Join(gc, "trim.txt"), []byte("1700000000\n"), 0o644)
	writeT(t, filepath.Join(gc, "testexpire.txt"), []byte("1700000000\n"), 0o644)
	writeT(t, filepath.Join(gc, "fuzz/example.com/m/FuzzX/1"), []byte("x"), 0o644)
	for i := range 20 {
		out := []byte(strings.Repeat("object file "+strconv.Itoa(i)+"\n", 200+i))
		s := sha(out)
		writeT(t, filepath.Join(gc, s[:2], s+"-d"), out, 0o644)
		a := sha([]byte("action" + strconv.Itoa(i)))
		writeT(t, filepath.Join(gc, a[:2], a+"-a"), []byte(indexLine(a, s, len(out))), 0o644)
	}
	bad := sha([]byte("not this"))
	writeT(t, filepath.Join(gc, bad[:2], bad+"-d"), []byte("half-written"), 0o644)
	return l
}

func indexLine(a, o string, n int) string {
	// Go's format: "v1 <action> <output> <size> <time>\n", 175 bytes.
	s := "v1 " + a + " " + o + " " + strconv.Itoa(n)
	return s + " " + strings.Repeat("0", 174-len(s)-1) + "\n"
}

// treeSums describes the packable entries of l's caches: path -> type, mode
// and content digest.
func treeSums(t testing.TB, l mount.Layout) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range l.Caches() {
		root := l.CacheDir(c)
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if p == root {
				return nil
			}
			rel := filepath.ToSlash(p[len(root)+1:])
			if excluded(c, rel, d.IsDir()) || c == mount.GoCache && isModIndexFile(root, p, d) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			fi, _ := d.Info()
			if d.IsDir() {
				out[string(c)+"/"+rel] = "dir " + fi.Mode().Perm().String()
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if id, ok := goCacheDataID(rel); c == mount.GoCache && ok && id != sha(b) {
				return nil // still being written: never packed
			}
			out[string(c)+"/"+rel] = "file " + fi.Mode().Perm().String() + " " + sha(b)
			return nil
		})
	}
	return out
}

func diffSums(t testing.TB, want, got map[string]string) {
	t.Helper()
	n := 0
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
			n++
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: extra %q", k, v)
			n++
		}
		if n > 20 {
			t.Fatal("too many differences")
		}
	}
}

// isModIndexFile matches the GOCACHE module-index entries a push leaves
// out, as mount's classifier sees them: outputs that begin "go index v2"
// and the action entries naming them.
func isModIndexFile(gocache, p string, d fs.DirEntry) bool {
	if !d.Type().IsRegular() || filepath.Dir(filepath.Dir(p)) != gocache {
		return false
	}
	if strings.HasSuffix(p, "-a") {
		c, err := mount.ClassifyAction(gocache, p)
		return err == nil && c == mount.OutputModIndex
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return strings.HasSuffix(p, "-d") && mount.ClassifyOutput(f) == mount.OutputModIndex
}

func newLayout(t testing.TB) mount.Layout {
	t.Helper()
	l, err := mount.New(testenv.TempDir(t), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPushPullRoundTrip(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	res, err := Push(ctx, src, s, "k1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Layers != 2 || res.Writing != 1 || res.Unchanged || res.Base != "" {
		t.Fatalf("first push: %+v", res)
	}
	want := treeSums(t, src)

	dst := newLayout(t)
	now := time.Now()
	pres, err := Pull(ctx, dst, s, "k1", Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if pres.Layers != 2 || pres.Files != res.Files || pres.FilesWritten != res.Files || pres.Resolved != "tag" {
		t.Fatalf("pull: %+v (push %+v)", pres, res)
	}
	diffSums(t, want, treeSums(t, dst))
	// Use marks (docs/background.md: old mtimes get a restored GOCACHE wiped).
	tb, err := os.ReadFile(filepath.Join(dst.CacheDir(mount.GoCache), "trim.txt"))
	if err != nil || string(tb) != strconv.FormatInt(now.Unix(), 10)+"\n" {
		t.Fatalf("trim.txt = %q, %v", tb, err)
	}
	fi, err := os.Stat(filepath.Join(dst.CacheDir(mount.GoCache), "README"))
	if err != nil || !fi.ModTime().Equal(now.Add(-useMarkAge).Truncate(time.Second)) && fi.ModTime().Sub(now.Add(-useMarkAge)).Abs() > time.Second {
		t.Fatalf("README mtime %v, want %v", fi.ModTime(), now.Add(-useMarkAge))
	}
	if _, err := os.Stat(journalPath(dst)); !os.IsNotExist(err) {
		t.Fatalf("journal left behind: %v", err)
	}
	if _, err := os.Stat(stagingDir(dst)); !os.IsNotExist(err) {
		t.Fatalf("staging left behind: %v", err)
	}

	// Unchanged re-push uploads nothing.
	writes := s.writes
	res2, err := Push(ctx, src, s, "k1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Unchanged || s.writes != writes || res2.Digest != res.Digest {
		t.Fatalf("unchanged re-push: %+v, %d new blobs", res2, s.writes-writes)
	}

	// A pull into the dir that already holds the snapshot downloads nothing.
	reads := len(s.reads)
	before := sumReads(s)
	pres2, err := Pull(ctx, dst, s, "k1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pres2.Layers != 0 || pres2.BlobsSkipped != 2 || pres2.FilesWritten != 0 || sumReads(s)-before != 2 {
		t.Fatalf("second pull: %+v (reads %d -> %d)", pres2, reads, len(s.reads))
	}
	diffSums(t, want, treeSums(t, dst))
}

func sumReads(s *memStore) int {
	n := 0
	for _, c := range s.reads {
		n += c
	}
	return n
}

func TestDeltaAndMerge(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	first, err := Push(ctx, src, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	// A local-only file in the destination survives a merge.
	writeT(t, filepath.Join(dst.CacheDir(mount.GoCache), "ff", "local-a"), []byte("mine"), 0o644)

	// The source builds something new: one new -d + -a, one -a rewritten,
	// one entry trimmed.
	gc := src.CacheDir(mount.GoCache)
	out := []byte("a new object\n")
	o := sha(out)
	writeT(t, filepath.Join(gc, o[:2], o+"-d"), out, 0o644)
	a := sha([]byte("new action"))
	writeT(t, filepath.Join(gc, a[:2], a+"-a"), []byte(indexLine(a, o, len(out))), 0o644)
	a0 := sha([]byte("action0"))
	writeT(t, filepath.Join(gc, a0[:2], a0+"-a"), []byte(indexLine(a0, o, len(out))), 0o644)
	out1 := []byte(strings.Repeat("object file 1\n", 201))
	o1 := sha(out1)
	os.Remove(filepath.Join(gc, o1[:2], o1+"-d"))

	res, err := Push(ctx, src, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Base != first.Digest || res.Layers != 1 || res.BlobsSkipped < 2 {
		t.Fatalf("delta push: %+v", res)
	}
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	last := snap.Config.Layers[len(snap.Config.Layers)-1]
	if len(snap.Config.Layers) != 3 || last.Generation != 2 || last.Files != 3 || last.Cache != mount.GoCache {
		t.Fatalf("delta layers: %+v", snap.Config.Layers)
	}
	if snap.Manifest.Annotations[AnnotationBase] != first.Digest {
		t.Fatalf("base annotation %q", snap.Manifest.Annotations[AnnotationBase])
	}

	before := sumReads(s)
	pres, err := Pull(ctx, dst, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Blobs read: the config, each index document of the chain, the layer.
	if pres.Layers != 1 || pres.FilesWritten != 3 || s.reads[last.Digest] != 1 || sumReads(s)-before != 2+len(snap.Config.Indexes) {
		t.Fatalf("delta pull: %+v, reads %v", pres, s.reads)
	}
	want := treeSums(t, src)
	got := treeSums(t, dst)
	if got["gocache/ff/local-a"] == "" {
		t.Fatal("merge dropped a local-only file")
	}
	// The trimmed entry stays locally in a merge (local-only entries stay).
	if got["gocache/"+o1[:2]+"/"+o1+"-d"] == "" {
		t.Fatal("merge dropped a local entry the snapshot no longer has")
	}
	delete(got, "gocache/ff/local-a")
	delete(got, "gocache/ff")
	delete(got, "gocache/"+o1[:2]+"/"+o1+"-d")
	if _, ok := want["gocache/"+o1[:2]]; !ok {
		delete(got, "gocache/"+o1[:2])
	}
	diffSums(t, want, got)

	// --replace gives exactly the snapshot.
	if _, err := Pull(ctx, dst, s, "k", Options{Replace: true}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, want, treeSums(t, dst))

	// --compact repacks into one layer per cache.
	cres, err := Push(ctx, src, s, "k", Options{Compact: true})
	if err != nil {
		t.Fatal(err)
	}
	snap, err = FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	if cres.Compacted == "" || len(snap.Config.Layers) != 2 || snap.Config.Layers[0].Generation != 3 {
		t.Fatalf("compact: %+v %+v", cres, snap.Config.Layers)
	}
}

func TestReproducible(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	a := makeCache(t, testenv.TempDir(t))
	b := makeCache(t, testenv.TempDir(t))
	// Different mtimes must not matter.
	old := time.Now().Add(-100 * time.Hour)
	filepath.WalkDir(b.Dir, func(p string, d fs.DirEntry, err error) error { os.Chtimes(p, old, old); return nil })
	s1, s2 := newMemStore(), newMemStore()
	if _, err := Push(ctx, a, s1, "x", Options{Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, b, s2, "x", Options{Jobs: 8}); err != nil {
		t.Fatal(err)
	}
	x1, _ := FetchSnapshot(ctx, s1, "x")
	x2, _ := FetchSnapshot(ctx, s2, "x")
	if x1.Manifest.Config.Digest != x2.Manifest.Config.Digest {
		t.Fatalf("config digests differ: %s %s", x1.Manifest.Config.Digest, x2.Manifest.Config.Digest)
	}
}

func TestRecoverRollsBackAndForward(t *testing.T) {
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	writeT(t, filepath.Join(dst.CacheDir(mount.GoCache), "old-file"), []byte("old"), 0o644)
	// Roll back: a journal in the stage phase leaves the caches as they were.
	if err := os.MkdirAll(filepath.Join(stagedNew(dst, mount.GoCache), "junk"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := writeJournal(dst, journal{Phase: phaseStage, Caches: dst.Caches()}); err != nil {
		t.Fatal(err)
	}
	did, err := recoverJournal(dst)
	if err != nil || !strings.Contains(did, "rolled back") {
		t.Fatalf("recover: %q %v", did, err)
	}
	if _, err := os.Stat(filepath.Join(dst.CacheDir(mount.GoCache), "old-file")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stagingDir(dst)); !os.IsNotExist(err) {
		t.Fatal("staging not removed")
	}
	// Roll forward: a swap-phase journal with one cache swapped completes.
	if err := os.MkdirAll(stagedNew(dst, mount.GoCache), 0o755); err != nil {
		t.Fatal(err)
	}
	writeT(t, filepath.Join(stagedNew(dst, mount.GoCache), "new-file"), []byte("new"), 0o644)
	if err := writeJournal(dst, journal{Phase: phaseSwap, Caches: dst.Caches()}); err != nil {
		t.Fatal(err)
	}
	if did, err := recoverJournal(dst); err != nil || !strings.Contains(did, "completed") {
		t.Fatalf("recover: %q %v", did, err)
	}
	if _, err := os.Stat(filepath.Join(dst.CacheDir(mount.GoCache), "new-file")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst.CacheDir(mount.GoCache), "old-file")); !os.IsNotExist(err) {
		t.Fatal("old cache still in place after roll-forward")
	}
}

func TestPullRetriesCutDownload(t *testing.T) {
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	layerRetryBackoff = time.Millisecond
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	s.cutAfter, s.cutBlob = 100, snap.Config.Layers[1].Digest
	dst := newLayout(t)
	if _, err := Pull(ctx, dst, s, "k", Options{Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	if s.reads[s.cutBlob] != 2 {
		t.Fatalf("cut layer read %d times, want 2", s.reads[s.cutBlob])
	}
	diffSums(t, treeSums(t, src), treeSums(t, dst))
}

func TestRestoreKeys(t *testing.T) {
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, tag := range []string{"go-1.26-b", "go-1.26-a", "go-1.25-z"} {
		at := t0.Add(time.Duration(i) * time.Hour)
		if i == 1 {
			at = t0.Add(-time.Hour) // older than go-1.26-b
		}
		writeT(t, filepath.Join(src.CacheDir(mount.GoCache), "v"), []byte(tag), 0o644)
		if _, err := Push(ctx, src, s, tag, Options{Now: func() time.Time { return at }}); err != nil {
			t.Fatal(err)
		}
	}
	snap, tag, how, err := Resolve(ctx, s, "go-1.26-missing", []string{"go-1.27-", "go-1.26-", "go-"})
	if err != nil || tag != "go-1.26-b" || how != "restore-key go-1.26-" || snap == nil {
		t.Fatalf("resolve: %q %q %v", tag, how, err)
	}
	if _, _, _, err := Resolve(ctx, s, "nope", []string{"zzz"}); err == nil || !isNotFound(err) {
		t.Fatalf("resolve with no match: %v", err)
	}
}

// TestPullWritesAsDirOwner: melange's guest writes as the host user who owns
// the cache; files a root pull writes must belong to that user too, or Go's
// use-mark refresh (os.Chtimes) silently fails on them. Ownership is per
// cache (issue 11, finding 4): an existing cache root's owner gets its
// files, a new cache gets the cache dir's owner.
func TestPullWritesAsDirOwner(t *testing.T) {
	testenv.RequireRoot(t, "chown to another user")
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	if err := os.Chown(dst.Dir, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	// An existing cache root keeps its own owner, who gets its files.
	gc := dst.CacheDir(mount.GoCache)
	if err := os.MkdirAll(gc, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(gc, 1001, 1001)
	if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range dst.Caches() {
		want := uint32(1000)
		if c == mount.GoCache {
			want = 1001
		}
		filepath.WalkDir(dst.CacheDir(c), func(p string, d fs.DirEntry, err error) error {
			fi, _ := os.Lstat(p)
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != want || st.Gid != want {
				t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, want, want)
			}
			n++
			return nil
		})
	}
	if n < 20 {
		t.Fatalf("only %d entries checked", n)
	}
}

// TestAutoCompaction: past 8 generations, a push repacks the files of the
// smallest generations into its own and keeps the biggest ones' layers, so
// it uploads about the small ones' bytes; past 30% dead bytes, it repacks
// the layers that are mostly dead and keeps the rest.
func TestAutoCompaction(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	gc := src.CacheDir(mount.GoCache)
	addOutputs(t, src, 9, 40, 8<<10) // generation 1 is by far the biggest
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	first, _ := FetchSnapshot(ctx, s, "k")
	layersOf := func(snap *Snapshot, gen int) map[string]bool {
		out := map[string]bool{}
		for i, li := range snap.Config.Layers {
			if li.Generation == gen {
				out[snap.DataLayer(i).Digest.String()] = true
			}
		}
		return out
	}
	gen1 := layersOf(first, 1)
	compactedAt := 0
	var res *Result
	for i := 2; i <= 12 && compactedAt == 0; i++ {
		writeT(t, filepath.Join(gc, "ee", "gen"+strconv.Itoa(i)), []byte(strings.Repeat("x", 10)), 0o644)
		var err error
		if res, err = Push(ctx, src, s, "k", Options{}); err != nil {
			t.Fatal(err)
		}
		if res.Compacted != "" {
			compactedAt = i
			if !strings.Contains(res.Compacted, "generations") {
				t.Fatalf("compacted for %q", res.Compacted)
			}
		}
	}
	// Generations 1..9: the 9th generation is one too many.
	if compactedAt != maxGenerations+1 {
		t.Fatalf("compacted at generation %d, want %d", compactedAt, maxGenerations+1)
	}
	snap, _ := FetchSnapshot(ctx, s, "k")
	gens := map[int]bool{}
	for _, li := range snap.Config.Layers {
		gens[li.Generation] = true
	}
	// Kept: generation 1 (the biggest) and the three oldest of the equal
	// small ones; generations 5-8 and the new file went into generation 9.
	for _, g := range []int{1, 2, 3, 4, 9} {
		if !gens[g] {
			t.Errorf("after the merge: generations %v, want 1-4 and 9", gens)
		}
	}
	if len(gens) != keepGenerations+1 {
		t.Errorf("after the merge: generations %v, want %d", gens, keepGenerations+1)
	}
	for d := range gen1 {
		if !layersOf(snap, 1)[d] {
			t.Errorf("generation 1's layer %s was repacked", d)
		}
	}
	if res.DataBytes > 16<<10 {
		t.Errorf("the merge uploaded %d data bytes; want about the small generations' (5 files of 10 bytes)", res.DataBytes)
	}

	// Dead bytes: a big file pushed next to a small one (so its layer stays
	// live), then deleted. (A layer with no live file at all is dropped
	// without compaction.)
	big := filepath.Join(gc, "ee", "big")
	writeT(t, big, []byte(strings.Repeat("big file content\n", 1<<18)), 0o644)
	writeT(t, filepath.Join(gc, "ee", "companion"), []byte("c"), 0o644)
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	withBig, _ := FetchSnapshot(ctx, s, "k")
	bigLayer := layersOf(withBig, maxGenerations+2)
	os.Remove(big)
	writeT(t, filepath.Join(gc, "ee", "small"), []byte("s"), 0o644)
	res, err := Push(ctx, src, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Compacted, "dead bytes") || !strings.Contains(res.Compacted, "1 layers repacked") {
		t.Fatalf("after the big file died: %+v; want its one layer repacked", res)
	}
	snap, _ = FetchSnapshot(ctx, s, "k")
	for d := range bigLayer {
		if layersOf(snap, maxGenerations+2)[d] {
			t.Errorf("the mostly dead layer %s is still referenced", d)
		}
	}
	for d := range gen1 {
		if !layersOf(snap, 1)[d] {
			t.Errorf("generation 1's layer %s was repacked for another layer's dead bytes", d)
		}
	}
	dst := newLayout(t)
	if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, treeSums(t, src), treeSums(t, dst))

	// --compact still repacks everything, into one layer per cache.
	if res, err = Push(ctx, src, s, "k", Options{Compact: true}); err != nil || res.Compacted != "--compact" {
		t.Fatalf("push --compact: %+v, %v", res, err)
	}
	snap, _ = FetchSnapshot(ctx, s, "k")
	if len(snap.Config.Layers) != 2 || len(snap.Config.Indexes) != 1 {
		t.Fatalf("after --compact: %d layers, %d index documents", len(snap.Config.Layers), len(snap.Config.Indexes))
	}
}

// TestHeldLocks: library calls reuse a caller's lock; a pull under a shared
// lock fails at once instead of waiting on itself.
func TestHeldLocks(t *testing.T) {
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	k, err := src.Lock(ctx, mount.Shared, mount.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, src, s, "k", Options{Lock: k}); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(ctx, src, s, "k", Options{Lock: k})
	if err == nil || !strings.Contains(err.Error(), "needs the exclusive lock") {
		t.Fatalf("pull under a shared lock: %v", err)
	}
	k.Unlock()
	x, err := src.Lock(ctx, mount.Exclusive, mount.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Unlock()
	if _, err := Pull(ctx, src, s, "k", Options{Lock: x}); err != nil {
		t.Fatal(err)
	}
}
