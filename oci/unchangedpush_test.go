package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// indexReads counts the reads of snap's index documents in s.
func indexReads(s *memStore, snap *Snapshot) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range snap.IndexLayers() {
		n += s.reads[d.Digest]
	}
	return n
}

// TestUnchangedPushReusesSnapshot: a push of a dir its last push left as
// it was reads neither the base's index nor a file, and tags a manifest
// with the same config and layers; a changed file, a file changed within
// racyWindow of the last push, or another cache set takes the long way.
func TestUnchangedPushReusesSnapshot(t *testing.T) {
	ctx := context.Background()
	l := makeCache(t, testenv.TempDir(t))
	addOutputs(t, l, 3, 30, 4<<10)
	s := newMemStore()
	// makeCache leaves a -d still being written: that push's snapshot is
	// not the walked tree, and the next push takes the long way.
	mustPush(t, l, s, "w", Options{Now: later})
	w := mustFetch(t, s, "w")
	mustPush(t, l, s, "w2", Options{Now: later})
	if indexReads(s, w) < 2 {
		t.Errorf("a push whose last push skipped a half-written file reused its snapshot")
	}
	half := sha([]byte("not this"))
	if err := os.Remove(filepath.Join(l.CacheDir(mount.GoCache), half[:2], half+"-d")); err != nil {
		t.Fatal(err)
	}
	mustPush(t, l, s, "a", Options{Now: later})
	a := mustFetch(t, s, "a")

	before := indexReads(s, a)
	res := mustPush(t, l, s, "b", Options{Now: later})
	if n := indexReads(s, a) - before; n != 0 {
		t.Errorf("the unchanged push read the base's index %d times", n)
	}
	b := mustFetch(t, s, "b")
	if res.BaseRule != BaseRuleExchanged || res.Base != a.Digest.String() || res.Hashed != 0 || res.DataBytes != 0 {
		t.Errorf("unchanged push: %+v; want base %s by rule %q, nothing hashed or uploaded", res, a.Digest, BaseRuleExchanged)
	}
	if b.Manifest.Config.Digest != a.Manifest.Config.Digest || len(b.Manifest.Layers) != len(a.Manifest.Layers) {
		t.Fatalf("the reused snapshot has another config or layers")
	}
	for i := range a.Manifest.Layers {
		if a.Manifest.Layers[i].Digest != b.Manifest.Layers[i].Digest || a.Manifest.Layers[i].Size != b.Manifest.Layers[i].Size {
			t.Errorf("layer %d: %v, want %v", i, b.Manifest.Layers[i], a.Manifest.Layers[i])
		}
	}
	if b.Manifest.Annotations[AnnotationKey] != "b" || b.Manifest.Annotations[AnnotationBase] != a.Digest.String() {
		t.Errorf("annotations %v", b.Manifest.Annotations)
	}
	// The same tag again: nothing written.
	if res := mustPush(t, l, s, "b", Options{Now: later}); !res.Unchanged || res.Digest != b.Digest.String() {
		t.Errorf("push to the same tag: %+v; want unchanged, %s", res, b.Digest)
	}
	dst := newLayout(t)
	if _, err := Pull(ctx, dst, s, "b", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, treeSums(t, l), treeSums(t, dst))

	// Another cache set: the long way.
	before = indexReads(s, b)
	mustPush(t, l, s, "gc", Options{Now: later, Only: []mount.Cache{mount.GoCache}})
	if indexReads(s, b) == before {
		t.Errorf("a push of gocache alone reused the snapshot of both Go caches")
	}

	// A changed file: the long way, and the change is in the snapshot.
	mustPush(t, l, s, "b", Options{Now: later})
	cur := mustFetch(t, s, "b")
	writeT(t, filepath.Join(l.CacheDir(mount.GoCache), "ee", "new"), []byte("new file\n"), 0o644)
	before = indexReads(s, cur)
	if res := mustPush(t, l, s, "c", Options{Now: later}); res.DataBytes == 0 || indexReads(s, cur) == before {
		t.Errorf("a push after a change: %+v; want the long way (base index read, a new layer)", res)
	}
	dst = newLayout(t)
	if _, err := Pull(ctx, dst, s, "c", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, treeSums(t, l), treeSums(t, dst))

	// Racy: the tree was pushed right after it was written (the clock is
	// not moved on), so a same-looking walk proves nothing.
	r := makeCache(t, testenv.TempDir(t))
	mustPush(t, r, s, "r1", Options{})
	r1 := mustFetch(t, s, "r1")
	mustPush(t, r, s, "r2", Options{})
	if indexReads(s, r1) < 2 {
		t.Errorf("a push whose last push was racy reused its snapshot")
	}
}

// TestUnchangedPushForgedStatCache: a stat cache that names a snapshot
// the dir does not hold makes a push tag that snapshot at most: never a
// snapshot of other content, and a changed tree still goes the long way.
func TestUnchangedPushForgedStatCache(t *testing.T) {
	l := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	mustPush(t, l, s, "a", Options{Now: later})
	sc := statCacheOf(t, l)
	sc.pushed.digest = "sha256:" + sha([]byte("no such snapshot"))
	if err := sc.save(l); err != nil {
		t.Fatal(err)
	}
	res := mustPush(t, l, s, "b", Options{Now: later})
	if res.Digest == "" || res.BaseRule != BaseRuleExchanged {
		t.Fatalf("push after a forged stat cache: %+v", res)
	}
	writeT(t, filepath.Join(l.CacheDir(mount.GoCache), "ee", "x"), []byte("x"), 0o644)
	dst := newLayout(t)
	mustPush(t, l, s, "c", Options{Now: later})
	if _, err := Pull(context.Background(), dst, s, "c", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, treeSums(t, l), treeSums(t, dst))
}

// cleanCache is makeCache plus outputs, without its half-written -d: a
// tree a push indexes exactly, so the next push may take the short way.
func cleanCache(t *testing.T) mount.Layout {
	t.Helper()
	l := makeCache(t, testenv.TempDir(t))
	addOutputs(t, l, 3, 30, 4<<10)
	half := sha([]byte("not this"))
	if err := os.Remove(filepath.Join(l.CacheDir(mount.GoCache), half[:2], half+"-d")); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestUnchangedPushCompactCompacts: --compact on an unchanged dir repacks,
// it does not reuse the last snapshot's layers.
func TestUnchangedPushCompactCompacts(t *testing.T) {
	l := cleanCache(t)
	s := newMemStore()
	mustPush(t, l, s, "a", Options{Now: later})
	addOutputs(t, l, 4, 5, 4<<10)
	mustPush(t, l, s, "b", Options{Now: later})
	b := mustFetch(t, s, "b")
	if len(b.Config.Layers) < 3 {
		t.Fatalf("the delta push left %d layers; want the base's two and a new one", len(b.Config.Layers))
	}
	res := mustPush(t, l, s, "c", Options{Now: later, Compact: true})
	if c := mustFetch(t, s, "c"); res.Compacted != "--compact" || len(c.Config.Layers) >= len(b.Config.Layers) {
		t.Errorf("--compact on an unchanged dir: compacted %q, %d layers (was %d)", res.Compacted, len(c.Config.Layers), len(b.Config.Layers))
	}
}

// failPutOnce refuses its first manifest PUT.
type failPutOnce struct {
	*memStore
	failed bool
}

func (f *failPutOnce) PutManifest(ctx context.Context, tag, mt string, b []byte) (v1.Hash, error) {
	if !f.failed {
		f.failed = true
		return v1.Hash{}, errors.New("injected: manifest PUT refused")
	}
	return f.memStore.PutManifest(ctx, tag, mt, b)
}

// TestUnchangedPushWriteFailureTakesLongWay: when the short way cannot
// write its manifest, the long way runs as if it had never been tried (it
// found no base here: the records are gone, the stat cache is not).
func TestUnchangedPushWriteFailureTakesLongWay(t *testing.T) {
	l := cleanCache(t)
	ms := newMemStore()
	mustPush(t, l, ms, "a", Options{Now: later})
	md := filepath.Join(l.Dir, ".melcache")
	ents, _ := os.ReadDir(md)
	for _, e := range ents {
		if e.Name() != statCacheName {
			os.RemoveAll(filepath.Join(md, e.Name()))
		}
	}
	res, err := Push(context.Background(), l, &failPutOnce{memStore: ms}, "b", Options{Now: later, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Base != "" || res.BaseRule != "" {
		t.Errorf("the long way reports the short way's base: %+v", res)
	}
	dst := newLayout(t)
	if _, err := Pull(context.Background(), dst, ms, "b", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, treeSums(t, l), treeSums(t, dst))
}

// TestWalkDeepTree: a build can make a tree as deep as a path allows; the
// walk holds a bounded number of directories open (maxHeldDirs).
func TestWalkDeepTree(t *testing.T) {
	l := makeCache(t, testenv.TempDir(t))
	deep := filepath.Join(l.CacheDir(mount.GoModCache), strings.Repeat("a/", 400))
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	writeT(t, filepath.Join(deep, "f"), []byte("deep\n"), 0o644)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = min(old.Cur, 256) // fewer than the tree has levels
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var st ScanStats
	entries, err := walkCache(l, mount.GoModCache, nil, &st)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	if err != nil {
		t.Fatalf("walk of a 400-deep tree under %d descriptors: %v", lim.Cur, err)
	}
	want := strings.Repeat("a/", 400) + "f"
	found := false
	for _, e := range entries {
		found = found || e.Path == want
	}
	if !found {
		t.Errorf("the deepest file is not among the %d entries", len(entries))
	}
}
