package oci

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// v1Fixture copies testdata/v1snap, a format 1 snapshot written by melcache
// at commit 90d42d5 (testdata/v1snap.gen.sh), into a temp dir and opens it.
func v1Fixture(t *testing.T) *LayoutStore {
	t.Helper()
	dir := filepath.Join(testenv.TempDir(t), "v1snap")
	if err := os.CopyFS(dir, os.DirFS("testdata/v1snap")); err != nil {
		t.Fatal(err)
	}
	return NewLayoutStore(dir)
}

// v1Sums reads testdata/v1snap.sums: the source tree's file digests, as
// sha256sum printed them when the fixture was made.
func v1Sums(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("testdata/v1snap.sums")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, p, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		out[p] = sum
	}
	return out
}

// fileSums keeps the content digests of treeSums' files.
func fileSums(t *testing.T, l mount.Layout) map[string]string {
	out := map[string]string{}
	for p, v := range treeSums(t, l) {
		if f := strings.Fields(v); f[0] == "file" {
			out[p] = f[2]
		}
	}
	return out
}

// TestV1FixturePulls: the new code pulls, verifies, inspects and lists a
// version 1 snapshot; a push whose base it is writes a full version 2
// snapshot and says why.
func TestV1FixturePulls(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	s := v1Fixture(t)
	dst := newLayout(t)
	res, err := Pull(ctx, dst, s, "v1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	diffSums(t, v1Sums(t), fileSums(t, dst))
	vr, err := dst.Verify(ctx, mount.VerifyOptions{})
	if err != nil || !vr.OK() {
		t.Fatalf("verify after pulling the v1 snapshot: %+v, %v", vr, err)
	}
	r, err := Inspect(ctx, s, "v1")
	if err != nil {
		t.Fatal(err)
	}
	// Three layers: the second push replaced the only gomodcache file of
	// generation 1. The untagged base manifest is not in index.json.
	if r.Config.FormatVersion != 1 || len(r.Indexes) != 1 || len(r.Layers) != 3 || r.Config.MaxGeneration() != 2 || len(r.Chain) != 2 || !r.Chain[1].Missing {
		t.Fatalf("inspect of the v1 snapshot: %+v", r)
	}
	ls, err := List(ctx, s)
	if err != nil || len(ls) != 1 || ls[0].Layers != 3 || ls[0].Error != "" {
		t.Fatalf("ls: %+v, %v", ls, err)
	}

	// The dir's base is the v1 snapshot it pulled: no positions to keep.
	pres, err := Push(ctx, dst, s, "v2", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pres.Base != res.Digest || !strings.Contains(pres.Compacted, "format version 1") {
		t.Fatalf("push with a v1 base: %+v", pres)
	}
	snap, err := FetchSnapshot(ctx, s, "v2")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Config.FormatVersion != FormatVersion || len(snap.Config.Indexes) != 1 || len(snap.Config.Layers) != 2 {
		t.Fatalf("snapshot pushed over a v1 base: %+v", snap.Config)
	}
	checkPositions(t, s, snap)
	again := newLayout(t)
	if _, err := Pull(ctx, again, s, "v2", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, v1Sums(t), fileSums(t, again))

	// gc keeps the v2 snapshot whole and drops the v1 one.
	gres, err := GC(ctx, s, GCOptions{KeepLast: 1, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil || len(gres.Deleted) != 1 || gres.Deleted[0].Digest != res.Digest {
		t.Fatalf("gc: %+v, %v", gres, err)
	}
	last := newLayout(t)
	if _, err := Pull(ctx, last, s, "v2", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, v1Sums(t), fileSums(t, last))
}

// TestGCKeepsIndexChain: gc in an OCI layout removes the blobs of deleted
// snapshots but keeps every index document and data layer the remaining
// snapshot lists, though older snapshots wrote them.
func TestGCKeepsIndexChain(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := smallCache(t, 100)
	s := NewLayoutStore(filepath.Join(testenv.TempDir(t), "lay"))
	now := time.Now()
	clock := 0
	push := func(tag string) {
		clock++
		at := now.Add(time.Duration(clock) * time.Minute)
		if _, err := Push(ctx, src, s, tag, Options{Now: func() time.Time { return at }}); err != nil {
			t.Fatal(err)
		}
	}
	// "k" grows a chain of three documents; t1 and t2, full snapshots of
	// the same trees (no base under a new tag), are older.
	push("k")
	push("t1")
	writeT(t, smallPath(src, 1), []byte("changed once"), 0o644)
	push("k")
	push("t2")
	writeT(t, smallPath(src, 2), []byte("changed twice"), 0o644)
	push("k")
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Config.Indexes) != 3 {
		t.Fatalf("chain of %d documents, want 3", len(snap.Config.Indexes))
	}
	gres, err := GC(ctx, s, GCOptions{KeepLast: 1, BlobGrace: time.Nanosecond, Now: func() time.Time { return now.Add(time.Hour) }})
	if err != nil || len(gres.Kept) != 1 || gres.Kept[0].Tags[0] != "k" || len(gres.Deleted) != 2 || gres.Blobs == 0 {
		t.Fatalf("gc: %+v, %v", gres, err)
	}
	dst := newLayout(t)
	if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
		t.Fatalf("pull after gc: %v", err)
	}
	diffSums(t, treeSums(t, src), treeSums(t, dst))
}
