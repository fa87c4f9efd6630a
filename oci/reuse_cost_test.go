package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// emptyFilesCache makes a GOCACHE of n empty files in 256 shard dirs.
func emptyFilesCache(t testing.TB, n int) mount.Layout {
	t.Helper()
	l, err := mount.New(testenv.TempDir(t), mount.Options{})
	if err != nil {
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
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// pullAllocs returns the heap allocations of a first pull of a snapshot of
// n empty files and of a second, fully reused pull.
func pullAllocs(t testing.TB, n int, replace bool) (first, again uint64) {
	t.Helper()
	ctx := context.Background()
	src := emptyFilesCache(t, n)
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	pull := func() (uint64, *Result) {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		res, err := Pull(ctx, dst, s, "k", Options{Replace: replace, Jobs: 2})
		runtime.ReadMemStats(&b)
		if err != nil {
			t.Fatal(err)
		}
		return b.Mallocs - a.Mallocs, res
	}
	first, r1 := pull()
	again, r2 := pull()
	if r1.FilesWritten != n || r2.FilesWritten != 0 {
		t.Fatalf("files written: first pull %d, second %d; want %d and 0", r1.FilesWritten, r2.FilesWritten, n)
	}
	return first, again
}

// TestReusedRepullCostsNoMoreThanFirstPull (issue 11, finding 12c): a
// re-pull that reuses every file made more heap allocations per file than
// the first pull (a string key per lookup, maps of reused keys, a copy of
// every candidate entry, a goroutine per hash). Per-file allocations are
// counted as the difference between two snapshot sizes, so fixed costs
// cancel out.
func TestReusedRepullCostsNoMoreThanFirstPull(t *testing.T) {
	const small, large = 200, 600
	for _, replace := range []bool{true, false} {
		f1, a1 := pullAllocs(t, small, replace)
		f2, a2 := pullAllocs(t, large, replace)
		perFirst := float64(f2-f1) / (large - small)
		perAgain := float64(a2-a1) / (large - small)
		t.Logf("replace=%v: heap allocations per file: first pull %.1f, fully reused re-pull %.1f", replace, perFirst, perAgain)
		if perAgain > perFirst {
			t.Errorf("replace=%v: a fully reused re-pull allocates %.1f times per file, the first pull %.1f", replace, perAgain, perFirst)
		}
	}
}

// BenchmarkRepullEmptyFiles measures a first pull and a fully reused
// re-pull of a snapshot of MELCACHE_REPULL_FILES (default 100,000) empty
// GOCACHE files: heap allocations per file and bytes allocated
// (docs/benchmarks.md, "Re-pull of many small files"). Not run by CI.
func BenchmarkRepullEmptyFiles(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("MELCACHE_REPULL_FILES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	src := emptyFilesCache(b, n)
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		dst := newLayout(b)
		for _, name := range []string{"first", "repull"} {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
				b.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n), name+"-allocs/file")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), name+"-MB")
		}
	}
}
