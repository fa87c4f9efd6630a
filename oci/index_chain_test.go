package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// smallCache makes a layout whose GOCACHE holds n small files spread over
// 256 directories (named fNNN, not Go's names: the test needs no -d rule).
func smallCache(t testing.TB, n int) mount.Layout {
	t.Helper()
	l, err := mount.New(testenv.TempDir(t), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.CacheDir(mount.GoModCache), 0o755); err != nil {
		t.Fatal(err)
	}
	gc := l.CacheDir(mount.GoCache)
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(gc, fmt.Sprintf("%02x", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		p := filepath.Join(gc, fmt.Sprintf("%02x", i%256), "f"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte("content of file "+strconv.Itoa(i)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func smallPath(l mount.Layout, i int) string {
	return filepath.Join(l.CacheDir(mount.GoCache), fmt.Sprintf("%02x", i%256), "f"+strconv.Itoa(i))
}

// TestIndexChainRoundTrip: delta pushes (new, changed and deleted files)
// each append one small index document; a pull of the chain restores
// exactly the source tree, and the chain read back is what was pushed.
func TestIndexChainRoundTrip(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	ctx := context.Background()
	src := smallCache(t, 600)
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	// Each round repeats the checks with a chain one document longer; two
	// already make a base and two deltas, so -short stops there.
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for round := 1; round <= rounds; round++ {
		writeT(t, filepath.Join(src.CacheDir(mount.GoCache), "ee", "new"+strconv.Itoa(round)), []byte("new in round "+strconv.Itoa(round)), 0o644)
		writeT(t, smallPath(src, round), []byte("changed in round "+strconv.Itoa(round)), 0o644)
		if err := os.Remove(smallPath(src, 100+round)); err != nil {
			t.Fatal(err)
		}
		res, err := Push(ctx, src, s, "k", Options{})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := FetchSnapshot(ctx, s, "k")
		if err != nil {
			t.Fatal(err)
		}
		chain := snap.Config.Indexes
		// One new document per push: the new file, the changed one and
		// one deletion.
		if len(chain) != round+1 || chain[round].Entries != 3 || res.Compacted != "" {
			t.Fatalf("round %d: chain %+v, push %+v", round, chain, res)
		}
		if res.MetaBytes > 8<<10 {
			t.Fatalf("round %d: %d metadata bytes for a 3-entry change", round, res.MetaBytes)
		}
		// The materialised index equals what the push planned: every
		// file's entry names the layer holding it at a valid position.
		if snap.Index.Entries[0].Cache != mount.GoCache || len(snap.Index.Entries) != 256+600 {
			t.Fatalf("round %d: %d entries", round, len(snap.Index.Entries))
		}
		checkPositions(t, s, snap)
		dst := newLayout(t)
		if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
			t.Fatal(err)
		}
		diffSums(t, treeSums(t, src), treeSums(t, dst))
	}
}

// TestIndexChainRules: a push that only changes index fields (modes) adds
// a document without a data layer; the chain never exceeds maxIndexChain
// documents, and deltas past half the full document give a full one.
func TestIndexChainRules(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := smallCache(t, 40)
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	chainLen := func() int {
		snap, err := FetchSnapshot(ctx, s, "k")
		if err != nil {
			t.Fatal(err)
		}
		return len(snap.Config.Indexes)
	}
	for i := 1; i <= maxIndexChain; i++ {
		if err := os.Chmod(smallPath(src, i), 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := Push(ctx, src, s, "k", Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := i + 1
		if i == maxIndexChain {
			want = 1 // the 9th document would be one too many
		}
		if got := chainLen(); got != want || res.Layers != 0 || res.DataBytes != 0 {
			t.Fatalf("push %d: chain of %d, want %d; %+v", i, got, want, res)
		}
	}
	// Every entry changes: the delta would be the whole full document.
	for i := range 40 {
		os.Chmod(smallPath(src, i), 0o640)
	}
	for i := range 256 {
		os.Chmod(filepath.Join(src.CacheDir(mount.GoCache), fmt.Sprintf("%02x", i)), 0o750)
	}
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	if got := chainLen(); got != 1 {
		t.Fatalf("a delta of 40 of 40 files: chain of %d, want one full document", got)
	}
	dst := newLayout(t)
	if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, treeSums(t, src), treeSums(t, dst))
}

// TestUnchangedNewTagWritesManifestOnly: the same cache pushed under a new
// tag reuses the base's index chain, config and layers; only the manifest
// is written.
func TestUnchangedNewTagWritesManifestOnly(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := smallCache(t, 50)
	s := newMemStore()
	first, err := Push(ctx, src, s, "a", Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The base of a push under a new tag: the snapshot last pulled.
	dir := newLayout(t)
	if _, err := Pull(ctx, dir, s, "a", Options{}); err != nil {
		t.Fatal(err)
	}
	writes := s.writes
	res, err := Push(ctx, dir, s, "b", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, mb, _, err := s.GetManifest(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if res.Base != first.Digest || res.DataBytes != 0 || res.MetaBytes != int64(len(mb)) || s.writes != writes {
		t.Fatalf("unchanged push under a new tag: %+v, %d blobs written", res, s.writes-writes)
	}
	a, _ := FetchSnapshot(ctx, s, "a")
	b, err := FetchSnapshot(ctx, s, "b")
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.Config.Digest != b.Manifest.Config.Digest || len(a.Manifest.Layers) != len(b.Manifest.Layers) {
		t.Fatalf("new tag's snapshot differs in config or layers: %+v vs %+v", b.Manifest, a.Manifest)
	}
	// The same tag again writes nothing at all.
	res, err = Push(ctx, dir, s, "b", Options{})
	if err != nil || !res.Unchanged || res.MetaBytes != 0 {
		t.Fatalf("unchanged push to the same tag: %+v, %v", res, err)
	}
}

// TestOneEntryChangeInLargeCache: one changed entry in a cache of 50k
// entries uploads at most 64 KiB (issue 13): one small layer, one index
// document of one entry, the config and the manifest.
func TestOneEntryChangeInLargeCache(t *testing.T) {
	testenv.SkipShort(t, "writes and hashes 50,000 files twice (~1 min on a busy 2-core machine)")
	ctx := context.Background()
	src := smallCache(t, 50_000)
	s := newMemStore()
	full, err := Push(ctx, src, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeT(t, smallPath(src, 777), []byte("changed"), 0o644)
	res, err := Push(ctx, src, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if up := res.DataBytes + res.MetaBytes; up > 64<<10 || res.Layers != 1 {
		t.Fatalf("one-entry change uploaded %d bytes in %d layers (full push: %d data + %d metadata)", up, res.Layers, full.DataBytes, full.MetaBytes)
	}
	t.Logf("one-entry change: uploaded %d bytes (%d data, %d metadata); the full push: %d data + %d metadata",
		res.DataBytes+res.MetaBytes, res.DataBytes, res.MetaBytes, full.DataBytes, full.MetaBytes)
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.Config.Indexes); n != 2 || snap.Config.Indexes[1].Entries != 1 {
		t.Fatalf("index chain %+v, want the full document and one of 1 entry", snap.Config.Indexes)
	}
	var got *Entry
	for i := range snap.Index.Entries {
		if e := &snap.Index.Entries[i]; e.Path == fmt.Sprintf("%02x/f777", 777%256) {
			got = e
		}
	}
	if got == nil || got.SHA256 != sha([]byte("changed")) || got.Gen != 2 {
		t.Fatalf("changed entry read back as %+v", got)
	}
}

// checkPositions reads every file of snap as a range reader would: only
// the frames [offset/frameSize, (offset+size-1)/frameSize] of its layer,
// each decompressed on its own, must hold its content at its offset.
func checkPositions(t *testing.T, s Store, snap *Snapshot) {
	t.Helper()
	frames := map[[2]int64][]byte{} // (layer, frame) -> decompressed
	frame := func(layer int, i int64) []byte {
		if b, ok := frames[[2]int64{int64(layer), i}]; ok {
			return b
		}
		li := snap.Config.Layers[layer]
		var start int64
		for _, n := range li.Frames[:i] {
			start += n
		}
		blob := readBlobT(t, s, snap.DataLayer(layer).Digest)
		dec, err := newDecoder(bytes.NewReader(blob[start : start+li.Frames[i]]))
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		b, err := io.ReadAll(dec)
		if err != nil || int64(len(b)) != min(li.FrameSize, li.Size-i*li.FrameSize) {
			t.Fatalf("layer %d frame %d: %d bytes, %v", layer, i, len(b), err)
		}
		frames[[2]int64{int64(layer), i}] = b
		return b
	}
	for _, e := range snap.Index.Entries {
		if e.Type != TypeFile {
			continue
		}
		li := snap.Config.Layers[e.Layer]
		first, last := e.Offset/li.FrameSize, max(e.Offset, e.Offset+e.Size-1)/li.FrameSize
		b := frame(e.Layer, first)
		for i := first + 1; i <= last; i++ {
			b = append(append([]byte(nil), b...), frame(e.Layer, i)...)
		}
		at := e.Offset - first*li.FrameSize
		h := sha256.Sum256(b[at : at+e.Size])
		if hex.EncodeToString(h[:]) != e.SHA256 || e.Frame != first {
			t.Fatalf("%s: the bytes at offset %d (frame %d) are not its content", e.Path, e.Offset, e.Frame)
		}
	}
}

// TestPositionsAcrossFrames: files larger than a frame and files that
// straddle frame boundaries are found by their positions.
func TestPositionsAcrossFrames(t *testing.T) {
	testenv.SkipShort(t, "packs 10 MiB")
	ctx := context.Background()
	src := smallCache(t, 20)
	gc := src.CacheDir(mount.GoCache)
	for i, n := range []int{pzstdChunk - 700, 3 << 20, pzstdChunk + 5, 100} {
		b := []byte(strings.Repeat(strconv.Itoa(i), n))
		writeT(t, filepath.Join(gc, "ee", "big"+strconv.Itoa(i)), b, 0o644)
	}
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Config.Layers[0].Frames) < 3 {
		t.Fatalf("frames %v: the test needs several", snap.Config.Layers[0].Frames)
	}
	checkPositions(t, s, snap)
}

func readBlobT(t *testing.T, s Store, d v1.Hash) []byte {
	t.Helper()
	rc, err := s.ReadBlob(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIndexDocShape: the document bytes docs/format.md specifies: a file
// carries gen, offset and frame (frame 0 too), a directory none of them,
// goTime only where set; deletions after the entries.
func TestIndexDocShape(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	b, err := encodeIndexDoc([]Entry{
		{Cache: mount.GoCache, Path: "00", Type: TypeDir, Mode: 0o755, Layer: 3},
		{Cache: mount.GoCache, Path: "00/x-a", Type: TypeFile, Mode: 0o644, Size: 175, SHA256: sum, Gen: 3, Offset: 1536, GoTime: 1764410000000000000, Layer: 1},
		{Cache: mount.GoCache, Path: "00/y", Type: TypeFile, Mode: 0o644, SHA256: sum, Gen: 1, Offset: 4 << 20, Frame: 1},
	}, []EntryRef{{Cache: mount.GoCache, Path: "00/z"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"formatVersion":2,"entries":[` +
		`{"cache":"gocache","path":"00","type":"dir","mode":493},` +
		`{"cache":"gocache","path":"00/x-a","type":"file","mode":420,"size":175,"sha256":"` + sum + `","gen":3,"offset":1536,"frame":0,"goTime":1764410000000000000},` +
		`{"cache":"gocache","path":"00/y","type":"file","mode":420,"sha256":"` + sum + `","gen":1,"offset":4194304,"frame":1}],` +
		`"deleted":[{"cache":"gocache","path":"00/z"}]}`
	if string(b) != want {
		t.Fatalf("index document\n got %s\nwant %s", b, want)
	}
}
