package mount

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
)

// TestPruneSynthetic checks prune's rules on entries with known ages: the
// unused-for cutoff, LRU order under a size cap, dry runs, trim.txt, and the
// removal of read-only module trees that can be re-extracted.
func TestPruneSynthetic(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	l, err := New(filepath.Join(testenv.TempDir(t), "mc"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(ctx, PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	gc := l.CacheDir(GoCache)
	type ent struct{ a, d string }
	mk := func(content string, age time.Duration) ent {
		a, d := putEntry(t, gc, content, now.Add(-age), now.Add(-age))
		return ent{a, d}
	}
	old := mk("ten days old, 100 bytes.........................................................................", 10*day)
	mid := mk("two days old", 2*day)
	recent := mk("one hour old", time.Hour)
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	// Dry run: reports, changes nothing, keeps trim.txt alone.
	before := treeState(t, l.Dir)
	res, err := l.Prune(ctx, PruneOptions{Now: func() time.Time { return now }, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 2 || res.TrimUpdated {
		t.Fatalf("dry run: %+v", res)
	}
	if d := diffStates(before, treeState(t, l.Dir)); len(d) > 0 {
		t.Fatalf("dry run changed %v", d)
	}

	// Default: Go's own rule, 5 days and an hour. trim.txt then says now.
	res, err = l.Prune(ctx, PruneOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if exists(old.a) || exists(old.d) || !exists(mid.a) || !exists(recent.d) || res.Entries != 2 {
		t.Fatalf("default prune: %+v", res)
	}
	b, err := os.ReadFile(filepath.Join(gc, "trim.txt"))
	if err != nil || string(b) != strconv.FormatInt(now.Unix(), 10) {
		t.Fatalf("trim.txt = %q, %v", b, err)
	}

	// Size cap: the least recently used go first, until the rest fits.
	sizeRecent := int64(len("one hour old")) + actionEntryLen
	res, err = l.Prune(ctx, PruneOptions{Now: func() time.Time { return now }, MaxSize: sizeRecent})
	if err != nil {
		t.Fatal(err)
	}
	if exists(mid.a) || exists(mid.d) || !exists(recent.a) || !exists(recent.d) || res.KeptBytes != sizeRecent {
		t.Fatalf("size prune: %+v", res)
	}

	// An action entry whose output is pruned goes with it even when newer.
	orphan := mk("output older than its action", 3*day)
	os.Chtimes(orphan.a, now, now)
	if _, err := l.Prune(ctx, PruneOptions{Now: func() time.Time { return now }, UnusedFor: 2 * day}); err != nil {
		t.Fatal(err)
	}
	if exists(orphan.d) || exists(orphan.a) {
		t.Fatal("dangling action entry kept")
	}

	// Module trees: read-only, removed only when the zip and .ziphash can
	// re-create them.
	mc := l.CacheDir(GoModCache)
	dl := filepath.Join(mc, "cache", "download", "example.com", "m", "@v")
	os.MkdirAll(dl, 0o755)
	for _, f := range []string{"v1.0.0.zip", "v1.0.0.ziphash", "v1.0.0.mod", "v2.0.0.mod"} {
		os.WriteFile(filepath.Join(dl, f), []byte("x"), 0o644)
	}
	for _, v := range []string{"v1.0.0", "v2.0.0"} {
		tree := filepath.Join(mc, "example.com", "m@"+v)
		os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
		os.WriteFile(filepath.Join(tree, "sub", "a.go"), []byte("package a"), 0o444)
		os.Chmod(filepath.Join(tree, "sub"), 0o555)
		os.Chmod(tree, 0o555)
	}
	res, err = l.Prune(ctx, PruneOptions{Now: func() time.Time { return now }, ModcacheTrees: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Trees != 1 || exists(filepath.Join(mc, "example.com", "m@v1.0.0")) || !exists(filepath.Join(mc, "example.com", "m@v2.0.0")) {
		t.Fatalf("tree prune: %+v", res)
	}
}

// TestMarkAndUse: Mark moves recent entries back past Go's hourly refresh
// threshold and records T; entries used after T are hits, entries written
// after T misses.
func TestMarkAndUse(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	l, err := New(filepath.Join(testenv.TempDir(t), "mc"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(ctx, PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	gc := l.CacheDir(GoCache)
	fresh, _ := putEntry(t, gc, "fresh", t0.Add(-time.Minute), t0.Add(-time.Minute))
	oldA, _ := putEntry(t, gc, "old", t0.Add(-3*time.Hour), t0.Add(-3*time.Hour))
	rec, err := l.Mark(ctx, MarkOptions{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Clamped != 2 || !rec.Time.Equal(t0) { // fresh's -a and -d
		t.Fatalf("mark: %+v", rec)
	}
	fi, _ := os.Stat(fresh)
	if !fi.ModTime().Equal(t0.Add(-markAge)) {
		t.Fatalf("fresh entry mtime %v, want %v", fi.ModTime(), t0.Add(-markAge))
	}
	if fi, _ := os.Stat(oldA); !fi.ModTime().Equal(t0.Add(-3 * time.Hour)) {
		t.Fatalf("old entry moved to %v", fi.ModTime())
	}
	// The "build": Go refreshes fresh (a hit) and writes a new entry (a
	// miss).
	after := t0.Add(time.Minute)
	os.Chtimes(fresh, after, after)
	putEntry(t, gc, "new", after, after)
	u, err := l.LastBuild()
	if err != nil {
		t.Fatal(err)
	}
	if u == nil || u.Hits != 1 || u.Misses != 1 {
		t.Fatalf("use = %+v, want 1 hit 1 miss", u)
	}
}

// TestPruneShortUnusedFor (issue 11, finding 12a): a limit below Go's
// hourly use-mark refresh cannot tell used entries from unused ones, so
// Prune refuses it instead of emptying the cache.
func TestPruneShortUnusedFor(t *testing.T) {
	l, err := New(filepath.Join(testenv.TempDir(t), "mc"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(context.Background(), PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Nanosecond, MinUnusedFor - 1} {
		if _, err := l.Prune(context.Background(), PruneOptions{UnusedFor: d}); err == nil || !strings.Contains(err.Error(), "use-mark interval") {
			t.Errorf("Prune UnusedFor %v: %v, want a refusal", d, err)
		}
	}
}
