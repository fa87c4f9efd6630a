package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// goAction is an action entry exactly as cmd/go/internal/cache writes it.
func goAction(action, out string, size int, t int64) string {
	return fmt.Sprintf("v1 %s %s %20d %20d\n", action, out, size, t)
}

// putAction writes output out and the action entry naming it, at Go time
// tm, into the GOCACHE gc, and returns the action entry's path.
func putAction(t testing.TB, gc, name string, out []byte, tm int64) string {
	t.Helper()
	o := sha(out)
	writeT(t, filepath.Join(gc, o[:2], o+"-d"), out, 0o644)
	a := sha([]byte(name))
	p := filepath.Join(gc, a[:2], a+"-a")
	rewriteAction(t, p, goAction(a, o, len(out), tm))
	return p
}

// rewriteAction rewrites the action entry at p in place, as Go does
// (putIndexEntry: write over the old bytes, truncate, then Chtimes now).
func rewriteAction(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(content))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		t.Fatal(err)
	}
}

// retime rewrites the action entry at p with only its time field changed.
func retime(t testing.TB, p string, tm int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	rewriteAction(t, p, string(mount.ActionWithTime(b, tm)))
}

func inode(t testing.TB, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func indexEntry(t testing.TB, s Store, tag, p string) Entry {
	t.Helper()
	snap, err := FetchSnapshot(context.Background(), s, tag)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range snap.Index.Entries {
		if e.Cache == mount.GoCache && e.Path == p {
			return e
		}
	}
	t.Fatalf("%s: no index entry gocache/%s", tag, p)
	return Entry{}
}

func gcRel(l mount.Layout, p string) string {
	rel, _ := filepath.Rel(l.CacheDir(mount.GoCache), p)
	return filepath.ToSlash(rel)
}

// TestActionTimeOnlyIsUnchanged: an action entry whose time field alone
// changed is the same entry for a push (no layer, no index; the index keeps
// the base's digest and goTime), for a merge pull (kept, neither rewritten
// nor downloaded) and for verify; one whose output id changed is not.
func TestActionTimeOnlyIsUnchanged(t *testing.T) {
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	gc := src.CacheDir(mount.GoCache)
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 123456789, time.UTC).UnixNano()
	a1 := putAction(t, gc, "link hello", []byte("an executable's build id\n"), t0)
	a2 := putAction(t, gc, "compile fmt", []byte("!<arch>\nfmt's archive\n"), t0+1)
	s := newMemStore()
	first, err := Push(ctx, src, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := indexEntry(t, s, "k", gcRel(src, a1))
	if base.GoTime != t0 {
		t.Fatalf("index goTime %d, want the packed time field %d", base.GoTime, t0)
	}

	// Go records the link action again: same output, new time.
	retime(t, a1, t0+60e9)
	res, err := Push(ctx, src, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || res.Digest != first.Digest || res.DataBytes+res.MetaBytes != 0 {
		t.Fatalf("push after a time-only rewrite: %+v; want unchanged, nothing uploaded", res)
	}
	if got := indexEntry(t, s, "k", gcRel(src, a1)); got != base {
		t.Fatalf("index entry %+v, want the base's %+v", got, base)
	}
	checkVerify(t, src, a1)

	// The compile action now names another output: a changed entry.
	out := []byte("!<arch>\nfmt's archive, rebuilt\n")
	o := sha(out)
	writeT(t, filepath.Join(gc, o[:2], o+"-d"), out, 0o644)
	id, _ := mount.ActionID(gcRel(src, a2))
	rewriteAction(t, a2, goAction(id, o, len(out), t0+1))
	res, err = Push(ctx, src, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Unchanged || res.Layers != 1 {
		t.Fatalf("push after an output change: %+v; want one new layer", res)
	}
	b, _ := os.ReadFile(a2)
	if got := indexEntry(t, s, "k", gcRel(src, a2)); got.SHA256 != sha(b) || got.GoTime != t0+1 {
		t.Fatalf("changed action's index entry %+v, want sha256 %s", got, sha(b))
	}
}

// TestMergePullKeepsRetimedAction: a merge pull keeps a local action entry
// that differs from the snapshot only in its time field (same inode, no
// download) and replaces one whose output id differs.
func TestMergePullKeepsRetimedAction(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	gc := src.CacheDir(mount.GoCache)
	t0 := time.Now().UnixNano()
	a1 := putAction(t, gc, "link hello", []byte("build id\n"), t0)
	a2 := putAction(t, gc, "compile fmt", []byte("!<arch>\nfmt\n"), t0)
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	d1 := filepath.Join(dst.CacheDir(mount.GoCache), gcRel(src, a1))
	d2 := filepath.Join(dst.CacheDir(mount.GoCache), gcRel(src, a2))
	retime(t, d1, t0+5e9)
	local, _ := os.ReadFile(d1)
	ino := inode(t, d1)
	res, err := Pull(ctx, dst, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.FilesWritten != 0 || res.Layers != 0 {
		t.Fatalf("merge pull over a retimed action entry: %+v; want nothing downloaded", res)
	}
	if b, _ := os.ReadFile(d1); string(b) != string(local) || inode(t, d1) != ino {
		t.Fatalf("the retimed action entry was rewritten: %q", b)
	}
	checkVerify(t, dst, d1)

	// Another output id: the snapshot's entry replaces it.
	id, _ := mount.ActionID(gcRel(src, a2))
	rewriteAction(t, d2, goAction(id, sha([]byte("other")), 5, t0))
	res, err = Pull(ctx, dst, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(a2)
	if b, _ := os.ReadFile(d2); res.FilesWritten != 1 || string(b) != string(want) {
		t.Fatalf("merge pull over a changed action entry: %+v, content %q; want the snapshot's %q", res, b, want)
	}
}

// checkVerify runs mount's verify and checks that it finds nothing wrong
// with the retimed action entries: they are well formed, and verify
// compares no entry with a snapshot's index. (makeCache's own action
// entries are not in Go's format: verify must report those, which shows
// it looked.)
func checkVerify(t testing.TB, l mount.Layout, retimed ...string) {
	t.Helper()
	vr, err := l.Verify(context.Background(), mount.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	malformed := 0
	for _, p := range vr.Problems {
		for _, r := range retimed {
			if filepath.Base(p.Path) == filepath.Base(r) {
				t.Errorf("verify reports the retimed action entry: %s", p)
			}
		}
		if strings.Contains(p.Reason, "malformed action entry") {
			malformed++
		}
	}
	if malformed == 0 {
		t.Fatalf("verify found none of makeCache's malformed action entries: %+v", vr)
	}
}
