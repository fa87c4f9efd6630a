package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
	"golang.org/x/mod/sumdb/dirhash"
)

// makeModCache writes mods extracted module trees of files files each into
// a new cache dir under dir, each with the .ziphash Go would have written
// (dirhash.Hash1 of the tree), as a go mod download of that many modules
// leaves it.
func makeModCache(t testing.TB, dir string, mods, files int) mount.Layout {
	t.Helper()
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mc := l.CacheDir(mount.GoModCache)
	for m := range mods {
		mod := fmt.Sprintf("example.com/m%04d", m)
		tree := filepath.Join(mc, mod+"@v1.0.0")
		for f := range files {
			p := filepath.Join(tree, fmt.Sprintf("pkg%d", f%3), fmt.Sprintf("f%03d.go", f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(fmt.Sprintf("package pkg // %s %d\n", mod, f)), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		h, err := dirhash.HashDir(tree, mod+"@v1.0.0", dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		dl := filepath.Join(mc, "cache/download", mod, "@v")
		if err := os.MkdirAll(dl, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dl, "v1.0.0.ziphash"), []byte(h+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(l.CacheDir(mount.GoCache), 0o755); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestVerifyModulesLinear (issue 11, finding 8): module verification looks
// each module file up once and hashes it once, however many modules there
// are (it used to match every file against every tree: 36 s of a 38.6 s
// pull at 2,000 modules × 100 files). Counted at 50 × 20.
func TestVerifyModulesLinear(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	const mods, files = 50, 20
	ctx := context.Background()
	src := makeModCache(t, testenv.TempDir(t), mods, files)
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	newPath := func(c mount.Cache, p string) string { return filepath.Join(src.CacheDir(c), p) }
	count := map[string]map[string]int{"lookup": {}, "hash": {}}
	visit := func(what, p string) { count[what][p]++ }
	// Half the trees reused: their files still count in the tree hashes
	// of the trees that have a downloaded file.
	reuse := map[string]bool{}
	for _, e := range snap.Index.Entries {
		if e.Cache == mount.GoModCache && e.Type == TypeFile && filepath.Base(e.Path) == "f000.go" {
			reuse[e.key()] = true
		}
	}
	if err := verifyModulesCounted(ctx, snap, reuse, newPath, 2, visit); err != nil {
		t.Fatal(err)
	}
	treeFiles := 0
	for _, e := range snap.Index.Entries {
		if e.Cache != mount.GoModCache || e.Type != TypeFile || strings.HasPrefix(e.Path, "cache/download/") {
			continue
		}
		treeFiles++
		if n := count["lookup"][e.Path]; n != 1 {
			t.Errorf("%s looked up %d times, want 1", e.Path, n)
		}
		if n := count["hash"][e.Path]; n != 1 {
			t.Errorf("%s hashed %d times, want 1", e.Path, n)
		}
	}
	if treeFiles != mods*files || len(count["lookup"]) != treeFiles || len(count["hash"]) != treeFiles {
		t.Fatalf("%d tree files in the index (want %d), %d looked up, %d hashed", treeFiles, mods*files, len(count["lookup"]), len(count["hash"]))
	}

	// Still a check: one file whose recorded hash is wrong fails its tree.
	for i, e := range snap.Index.Entries {
		if e.Type == TypeFile && e.Cache == mount.GoModCache && moduleTreeRoot(e.Path) == "example.com/m0007@v1.0.0" {
			snap.Index.Entries[i].SHA256 = "00" + e.SHA256[2:]
			break
		}
	}
	err = verifyModulesCounted(ctx, snap, nil, newPath, 2, nil)
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "module tree example.com/m0007@v1.0.0 hashes to") {
		t.Fatalf("tampered tree: %v, want a VerifyError naming it", err)
	}
}

// BenchmarkPullModules pulls a snapshot of MELCACHE_BENCH_MODULES module
// versions × MELCACHE_BENCH_FILES files (default 2,000 × 100, the size of
// issue 11's finding 8) and reports the verification's share: verify-s is
// verifyModules alone on the pulled index, pull-s the whole pull (extract,
// verify overlapped, swap). docs/benchmarks.md records a run:
//
//	go test ./oci -run '^$' -bench BenchmarkPullModules -benchtime 3x
func BenchmarkPullModules(b *testing.B) {
	mods, files := benchEnv("MELCACHE_BENCH_MODULES", 2000), benchEnv("MELCACHE_BENCH_FILES", 100)
	ctx := context.Background()
	src := makeModCache(b, b.TempDir(), mods, files)
	s := NewLayoutStore(filepath.Join(b.TempDir(), "layout"))
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		b.Fatal(err)
	}
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		b.Fatal(err)
	}
	var pull, verify time.Duration
	for b.Loop() {
		dst, err := mount.New(filepath.Join(b.TempDir(), "dst"), mount.Options{})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		newPath := func(c mount.Cache, p string) string { return filepath.Join(dst.CacheDir(c), p) }
		if err := verifyModules(ctx, dst, snap, nil, newPath, 2); err != nil {
			b.Fatal(err)
		}
		pull, verify = pull+t1.Sub(t0), verify+time.Since(t1)
	}
	b.ReportMetric(pull.Seconds()/float64(b.N), "pull-s/op")
	b.ReportMetric(verify.Seconds()/float64(b.N), "verify-s/op")
	b.ReportMetric(float64(mods*files), "files")
}

func benchEnv(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
