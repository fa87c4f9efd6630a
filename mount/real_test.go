package mount

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
)

// TestVerifyRealCache: on caches made by real Go builds, verify finds one
// flipped byte in a build output, in an executable output directory (Go >=
// 1.24), in a module zip and in an extracted module tree, and a truncated
// action entry; --repair removes them; verify then passes and a build with no
// module proxy at all succeeds from what is left.
func TestVerifyRealCache(t *testing.T) {
	ctx := context.Background()
	l := realCache(t)
	// go run caches the executable it builds as a "-d" directory.
	src := prunexDir(t)
	cmd := exec.Command("go", "run", "-trimpath", ".")
	cmd.Dir = src
	cmd.Env = goEnv(l).Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run: %v\n%s", err, out)
	}
	gc, mc := l.CacheDir(GoCache), l.CacheDir(GoModCache)

	res, err := l.Verify(ctx, VerifyOptions{GoSums: []string{filepath.Join(testenv.RealCacheModule(), "go.sum")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 0 || res.Outputs == 0 || res.Actions == 0 || res.Zips == 0 || res.Trees == 0 {
		t.Fatalf("fresh real cache: %+v", res)
	}

	exeDir := findFile(t, gc, func(p string, fi fs.FileInfo) bool { return fi.IsDir() && strings.HasSuffix(p, "-d") })
	ents, _ := os.ReadDir(exeDir)
	exeFile := filepath.Join(exeDir, ents[0].Name())
	output := findFile(t, gc, func(p string, fi fs.FileInfo) bool {
		return fi.Mode().IsRegular() && strings.HasSuffix(p, "-d") && fi.Size() > 1000
	})
	action := findFile(t, gc, func(p string, fi fs.FileInfo) bool { return strings.HasSuffix(p, "-a") })
	zip := findFile(t, filepath.Join(mc, "cache", "download", "github.com", "spf13", "pflag"), func(p string, fi fs.FileInfo) bool {
		return strings.HasSuffix(p, ".zip")
	})
	tree := findFile(t, filepath.Join(mc, "github.com", "spf13"), func(p string, fi fs.FileInfo) bool {
		return fi.IsDir() && strings.HasPrefix(fi.Name(), "cobra@")
	})
	flipByte(t, output)
	flipByte(t, exeFile)
	flipByte(t, zip)
	flipByte(t, filepath.Join(tree, "command.go"))
	if err := os.Truncate(action, 100); err != nil {
		t.Fatal(err)
	}

	res, err = l.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{output: true, exeDir: true, zip: true, tree: true, action: true}
	for _, p := range res.Problems {
		if !want[p.Path] {
			t.Errorf("unexpected problem %s", p)
		}
		delete(want, p.Path)
	}
	for p := range want {
		t.Errorf("verify missed %s", p)
	}
	if res.OK() {
		t.Fatal("verify with problems reports OK")
	}

	res, err = l.Verify(ctx, VerifyOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 5 || !res.OK() {
		t.Fatalf("repair: %+v", res.Problems)
	}
	for _, p := range []string{output, exeDir, zip, tree, action} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("repair kept %s", p)
		}
	}
	res, err = l.Verify(ctx, VerifyOptions{})
	if err != nil || len(res.Problems) != 0 {
		t.Fatalf("verify after repair: %v %+v", err, res)
	}
	// What repair left is consistent: the build finds pflag's tree (zip
	// gone, .ziphash kept) and re-extracts cobra from its zip, offline.
	testenv.GoBuild(t, testenv.RealCacheModule(), goEnv(l, "GOPROXY=off", "GOFLAGS=-mod=readonly"), ".")

	// A go.sum that disagrees with the cache is reported.
	bad := filepath.Join(t.TempDir(), "go.sum")
	os.WriteFile(bad, []byte("github.com/spf13/pflag v1.0.10 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o644)
	res, err = l.Verify(ctx, VerifyOptions{GoSums: []string{bad}})
	if err != nil || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Reason, "go.sum") {
		t.Fatalf("go.sum mismatch: %v %+v", err, res)
	}
}

// TestPruneRealCache: X is built last into a cache that also holds another
// program's entries; pruning to a size that fits X's entries removes the
// others, and rebuilding X compiles nothing. Pruning extracted trees then
// leaves a cache from which X still builds with no module proxy.
func TestPruneRealCache(t *testing.T) {
	ctx := context.Background()
	l := realCache(t) // holds the fixture program's build: the "other program"
	rec, err := l.Mark(ctx, MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := prunexDir(t)
	env := goEnv(l, "GOPROXY=off")
	testenv.GoBuild(t, src, env, ".")
	use, err := l.Use(rec.Time)
	if err != nil {
		t.Fatal(err)
	}
	if use.Hits == 0 || use.Misses == 0 {
		t.Fatalf("X's build: %+v, want hits (std, pflag) and misses (main)", use)
	}
	ents, err := scanGoCache(l.CacheDir(GoCache))
	if err != nil {
		t.Fatal(err)
	}
	var xBytes, total int64
	xEntries := 0
	for _, e := range ents {
		total += e.size
		if e.modTime.After(rec.Time) {
			xBytes += e.size
			xEntries++
		}
	}
	res, err := l.Prune(ctx, PruneOptions{MaxSize: xBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned %d entries (%d bytes) of %d bytes; kept %d (%d bytes) for X", res.Entries, res.Bytes, total, res.Kept, res.KeptBytes)
	if res.Kept != xEntries || res.KeptBytes != xBytes || res.Entries != len(ents)-xEntries || res.Entries == 0 {
		t.Fatalf("prune to X's %d entries / %d bytes: %+v", xEntries, xBytes, res)
	}
	rec, err = l.Mark(ctx, MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, out := testenv.GoBuild(t, src, env, "."); n != 0 {
		t.Fatalf("rebuild of X after prune compiled %d packages:\n%s", n, out)
	}
	// The warm rebuild is all hits: every kept entry it used, no new one.
	if use, err := l.Use(rec.Time); err != nil || use.Hits == 0 || use.Misses != 0 {
		t.Fatalf("warm rebuild after mark: %+v %v, want hits and no misses", use, err)
	}

	res, err = l.Prune(ctx, PruneOptions{ModcacheTrees: true, UnusedFor: 30 * day})
	if err != nil {
		t.Fatal(err)
	}
	if res.Trees == 0 {
		t.Fatalf("no trees pruned: %+v", res)
	}
	if trees, _ := scanModTrees(l.CacheDir(GoModCache)); len(trees) != 0 {
		t.Fatalf("trees left: %v", trees)
	}
	if n, out := testenv.GoBuild(t, src, env, "."); n != 0 {
		t.Fatalf("rebuild of X after tree prune compiled %d packages:\n%s", n, out)
	}
}

// TestPrepareFromHost: --from-host seeds the module cache (hard links on
// one filesystem) so that a build with GOPROXY=off finds its modules.
func TestPrepareFromHost(t *testing.T) {
	ctx := context.Background()
	host := realCache(t)
	l, err := New(filepath.Join(testenv.TempDir(t), "mc"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Prepare(ctx, PrepareOptions{FromHost: host.CacheDir(GoModCache)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Seeded == nil || res.Seeded.Linked == 0 {
		t.Fatalf("seeded: %+v", res.Seeded)
	}
	// The build cache is the warm host one: this test is about modules.
	env := testenv.GoEnv{ModCache: l.CacheDir(GoModCache), Cache: host.CacheDir(GoCache), Extra: []string{"GOPROXY=off"}}
	testenv.GoBuild(t, prunexDir(t), env, ".")
	if _, err := os.Stat(filepath.Join(l.CacheDir(GoModCache), "github.com", "spf13", "pflag@v1.0.10", "flag.go")); err != nil {
		t.Fatalf("pflag not extracted from the seeded zip: %v", err)
	}
	res, err = l.Prepare(ctx, PrepareOptions{FromHost: host.CacheDir(GoModCache)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Seeded.Linked+res.Seeded.Copied != 0 || res.Seeded.Skipped == 0 {
		t.Fatalf("second seeding: %+v", res.Seeded)
	}
}

// TestOwnershipBuildAsUser: with --owner 1000:1000, a go build run as uid
// 1000 (as melange's bubblewrap runner maps the host user) writes into
// gocache/ and refreshes the use marks of the entries it uses.
func TestOwnershipBuildAsUser(t *testing.T) {
	testenv.RequireRoot(t, "runs a build as uid 1000")
	setpriv := testenv.RequireTool(t, "setpriv")
	ctx := context.Background()
	// t.TempDir's parents are 0700: uid 1000 could not reach inside.
	base, err := os.MkdirTemp("", "melcache-owner")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.RemoveAll(t, base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.CopyTree(t, testenv.RealCache(t), filepath.Join(base, "mc"))
	l, err := New(filepath.Join(base, "mc"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	build := Owner{1000, 1000}
	res, err := l.Prepare(ctx, PrepareOptions{Owner: &build})
	if err != nil {
		t.Fatal(err)
	}
	if res.Chowned == 0 {
		t.Fatal("prepare re-owned nothing in a root-owned cache")
	}
	if res, err := l.Prepare(ctx, PrepareOptions{Owner: &build}); err != nil || res.Changed() {
		t.Fatalf("second prepare: %+v %v", res, err)
	}
	// Age every entry as a restore does, then mark the build's start.
	ents, _ := scanGoCache(l.CacheDir(GoCache))
	aged := time.Now().Add(-2 * time.Hour)
	for _, e := range ents {
		os.Chtimes(e.path, aged, aged)
	}
	rec, err := l.Mark(ctx, MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}

	home, src := filepath.Join(base, "home"), filepath.Join(base, "src")
	os.Mkdir(home, 0o755)
	testenv.CopyTree(t, "testdata/prunex", src)
	for _, d := range []string{home, src} {
		if _, err := chownTree(d, build); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(setpriv, "--reuid", "1000", "--regid", "1000", "--clear-groups",
		"go", "build", "-trimpath", "-o", filepath.Join(home, "prunex"), ".")
	cmd.Dir = src
	// TMPDIR: go's work dir, in a place uid 1000 can write even when the
	// tests run with TMPDIR pointing at a root-only directory.
	cmd.Env = goEnv(l, "HOME="+home, "TMPDIR="+home, testenv.GoConfigEnv(t), "GOPROXY=off", "GOFLAGS=-mod=readonly").Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build as uid 1000: %v\n%s", err, out)
	}
	use, err := l.Use(rec.Time)
	if err != nil {
		t.Fatal(err)
	}
	if use.Hits == 0 || use.Misses == 0 {
		t.Fatalf("build as uid 1000: %+v; want refreshed use marks (hits) and new entries (misses)", use)
	}
	after, _ := scanGoCache(l.CacheDir(GoCache))
	for _, e := range after {
		if !e.modTime.After(rec.Time) {
			continue
		}
		fi, err := os.Stat(e.path)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 {
			t.Errorf("%s belongs to uid %d", e.path, st.Uid)
		}
	}
	t.Logf("uid 1000 build: %d hits, %d misses", use.Hits, use.Misses)
}
