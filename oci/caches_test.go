package oci

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// Issue 15's acceptance tests: melange's other caches in snapshots, on the
// real registry, with real npm and pip caches (testenv.FillNPMCache,
// testenv.FillPipCache) beside the Go caches and the fetch cache.

// otherSums describes the packable entries of l's caches other than Go's
// (treeSums covers those): "cache/path" -> type, mode and content digest;
// volatile files aside. The fetch cache is DIR's sha256:/sha512: files.
func otherSums(t testing.TB, l mount.Layout) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range l.AllCaches() {
		if isGoCache(c) {
			continue
		}
		if c == mount.FetchCache {
			es, err := walkFetch(l, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				b, _ := os.ReadFile(filepath.Join(l.Dir, e.Path))
				out["fetch/"+e.Path] = "file " + fs.FileMode(e.Mode).String() + " " + sha(b)
			}
			continue
		}
		root := l.CacheDir(c)
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				t.Fatal(err)
			}
			if p == root {
				return nil
			}
			rel := filepath.ToSlash(p[len(root)+1:])
			if excluded(c, rel, d.IsDir()) {
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
			b, _ := os.ReadFile(p)
			out[string(c)+"/"+rel] = "file " + fi.Mode().Perm().String() + " " + sha(b)
			return nil
		})
	}
	return out
}

// allSums is treeSums and otherSums together: every cache of l.
func allSums(t testing.TB, l mount.Layout) map[string]string {
	out := treeSums(t, l)
	for k, v := range otherSums(t, l) {
		out[k] = v
	}
	return out
}

// dirState is every entry under dir but the state dir (and dir itself,
// whose mtime any rename in it changes), with type, mode, size, mtime and
// content digest: "left exactly as it was" compares it.
func dirState(t testing.TB, dir string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if rel == mount.StateName || slices.Contains(skip, rel) {
			return filepath.SkipDir
		}
		fi, _ := d.Info()
		v := fi.Mode().String() + " " + fi.ModTime().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + sha(b)
		}
		out[rel] = v
		return nil
	})
	return out
}

// addFetch writes DIR/<algo>:<hex of content> holding content, as melange
// update-cache would, and returns its name.
func addFetch(t testing.TB, l mount.Layout, content string, sha512Name bool) string {
	t.Helper()
	name := "sha256:" + sha([]byte(content))
	if sha512Name {
		s := sha512.Sum512([]byte(content))
		name = "sha512:" + hex.EncodeToString(s[:])
	}
	writeT(t, filepath.Join(l.Dir, name), []byte(content), 0o644)
	return name
}

// mixedCache is a cache dir holding the Go caches (makeCache), real npm and
// pip caches, two fetch-cache files, and files of DIR that are no cache's
// (an apk, notes, a name that is almost a fetch name).
func mixedCache(t *testing.T) mount.Layout {
	t.Helper()
	l := makeCache(t, testenv.TempDir(t))
	testenv.FillNPMCache(t, l.CacheDir(mount.NPMCache), testenv.DemoNPMPackage)
	testenv.FillPipCache(t, l.CacheDir(mount.PipCache))
	addFetch(t, l, "a source tarball\n", false)
	addFetch(t, l, "another source tarball\n", true)
	writeT(t, filepath.Join(l.Dir, "x86_64", "hello-1.0-r0.apk"), []byte("an apk"), 0o644)
	writeT(t, filepath.Join(l.Dir, "notes.txt"), []byte("not a cache"), 0o644)
	writeT(t, filepath.Join(l.Dir, "sha256:NOTHEX"), []byte("not the fetch cache's"), 0o644)
	return l
}

func registryT(t *testing.T, repo string) (Store, *testenv.Registry) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	return registryStore(t, reg, repo), reg
}

// TestMixedCachesRoundTrip: Go, npm, pip and fetch caches round-trip
// through the real registry byte for byte (volatile files aside); DIR's
// other files are neither pushed nor touched by the pull; skopeo copies
// the snapshot, and it restores from the copy.
func TestMixedCachesRoundTrip(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (registry, npm, pip)")
	ctx := context.Background()
	src := mixedCache(t)
	if _, err := os.Stat(filepath.Join(src.CacheDir(mount.NPMCache), "_logs")); err != nil {
		t.Fatalf("npm wrote no _logs, the volatile files this test leaves out: %v", err)
	}
	rs, reg := registryT(t, "mixed")
	mustPush(t, src, rs, "t1", Options{})
	snap, err := FetchSnapshot(ctx, rs, "t1")
	if err != nil {
		t.Fatal(err)
	}
	want := []mount.Cache{mount.GoModCache, mount.GoCache, mount.NPMCache, mount.PipCache, mount.FetchCache}
	if !slices.Equal(snap.Config.Caches, want) {
		t.Fatalf("config caches %v, want %v (the Go caches and every other cache present)", snap.Config.Caches, want)
	}
	for _, e := range snap.Index.Entries {
		if e.Cache == mount.NPMCache && strings.HasPrefix(e.Path, "_logs") {
			t.Errorf("volatile %s/%s was pushed", e.Cache, e.Path)
		}
	}
	dst := newLayout(t)
	writeT(t, filepath.Join(dst.Dir, "mine.apk"), []byte("the builder's own"), 0o644)
	mine := addFetch(t, dst, "the builder's own source\n", false)
	before := dirState(t, dst.Dir)
	if _, err := Pull(ctx, dst, rs, "t1", Options{}); err != nil {
		t.Fatal(err)
	}
	got := allSums(t, dst)
	if got["fetch/"+mine] == "" {
		t.Errorf("a merge pull removed the builder's own fetch file %s", mine)
	}
	delete(got, "fetch/"+mine)
	diffSums(t, allSums(t, src), got)
	after := dirState(t, dst.Dir)
	for _, n := range []string{"mine.apk", mine} {
		if after[n] != before[n] {
			t.Errorf("%s changed: %q, was %q", n, after[n], before[n])
		}
	}
	for _, n := range []string{"notes.txt", "x86_64", "sha256:NOTHEX", "npm/_logs"} {
		if _, ok := after[n]; ok {
			t.Errorf("%s was restored: it is no cache's, or volatile", n)
		}
	}

	// --replace gives exactly the snapshot: the builder's fetch file goes,
	// its apk stays.
	if _, err := Pull(ctx, dst, rs, "t1", Options{Replace: true}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, allSums(t, src), allSums(t, dst))
	if _, err := os.Stat(filepath.Join(dst.Dir, "mine.apk")); err != nil {
		t.Errorf("--replace removed a file of DIR that is no cache's: %v", err)
	}

	// skopeo copies it; melcache restores from the copy.
	skopeo := testenv.RequireTool(t, "skopeo")
	layout := filepath.Join(testenv.TempDir(t), "layout")
	if out, err := exec.Command(skopeo, "copy", "--src-tls-verify=false", "docker://"+reg.Host+"/mixed:t1", "oci:"+layout+":t1").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	ls := NewLayoutStore(layout)
	cp := newLayout(t)
	if _, err := Pull(ctx, cp, ls, "t1", Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, allSums(t, src), allSums(t, cp))
	tarLists(t, layout, ls, "t1")
}

// forgedPull pushes src to tag with the push's own verification off, so the
// snapshot holds the bad file under an index digest that matches its
// bytes, checks that, and that a pull into dst is refused with the caches
// left exactly as they were.
func forgedPull(t *testing.T, s Store, src, dst mount.Layout, tag string, c mount.Cache, rel string) {
	t.Helper()
	ctx := context.Background()
	forgeUnverified = true
	mustPush(t, src, s, tag, Options{})
	forgeUnverified = false
	snap, err := FetchSnapshot(ctx, s, tag)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(cacheRoot(src, c), filepath.FromSlash(rel)))
	i := slices.IndexFunc(snap.Index.Entries, func(e Entry) bool { return e.Cache == c && e.Path == rel })
	if i < 0 || snap.Index.Entries[i].SHA256 != sha(b) {
		t.Fatalf("the forged snapshot does not hold %s/%s with its tampered bytes' digest", c, rel)
	}
	before := dirState(t, dst.Dir)
	_, err = Pull(ctx, dst, s, tag, Options{Replace: true})
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), rel) {
		t.Fatalf("pull of a snapshot with a tampered %s file: %v; want a VerifyError naming %s", c, err, rel)
	}
	t.Logf("refused: %v", err)
	diffSums(t, before, dirState(t, dst.Dir))
	if RecoveryPending(dst) {
		t.Error("the refused pull left a journal or staging dir")
	}
}

// TestPullRefusesTamperedFetchFile: DIR/sha256:X holding other bytes is
// skipped and counted by a push, and refused by a pull.
func TestPullRefusesTamperedFetchFile(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (registry)")
	rs, _ := registryT(t, "tamper")
	src := makeCache(t, testenv.TempDir(t))
	addFetch(t, src, "a good source\n", true)
	bad := addFetch(t, src, "the source as published\n", false)
	writeT(t, filepath.Join(src.Dir, bad), []byte("the source as a mirror changed it\n"), 0o644)

	res := mustPush(t, src, rs, "honest", Options{})
	if res.Bad != 1 {
		t.Errorf("push counted %d bad files, want the tampered fetch file", res.Bad)
	}
	snap, err := FetchSnapshot(context.Background(), rs, "honest")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range snap.Index.Entries {
		if e.Path == bad {
			t.Errorf("push published the tampered %s", bad)
		}
	}
	dst := newLayout(t)
	if _, err := Pull(context.Background(), dst, rs, "honest", Options{}); err != nil {
		t.Fatal(err)
	}
	addFetch(t, dst, "the builder's own\n", false)
	forgedPull(t, rs, src, dst, "forged", mount.FetchCache, bad)
}

// TestPullRefusesTamperedNPMEntry: a cacache content file whose sha512 is
// not the integrity that names it.
func TestPullRefusesTamperedNPMEntry(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (registry, npm)")
	rs, _ := registryT(t, "tamper")
	src := mixedCache(t)
	npm := src.CacheDir(mount.NPMCache)
	content, _ := filepath.Glob(filepath.Join(npm, "_cacache", "content-v2", "sha512", "*", "*", "*"))
	if len(content) == 0 {
		t.Fatal("npm cached no content")
	}
	dst := newLayout(t)
	if _, err := Pull(context.Background(), dst, rs, mustPush(t, src, rs, "good", Options{}).Digest, Options{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(content[0])
	b[len(b)/2] ^= 1
	writeT(t, content[0], b, 0o644)
	if res := mustPush(t, src, rs, "honest", Options{}); res.Bad != 1 {
		t.Errorf("push counted %d bad files, want the tampered content", res.Bad)
	}
	rel, _ := relUnder(npm, content[0])
	forgedPull(t, rs, src, dst, "forged", mount.NPMCache, rel)
}

// TestNPMDelta: after a change in npm only, a push uploads one npm layer
// and at most 1.1x the compressed size of the new npm files.
func TestNPMDelta(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (registry, npm, pip)")
	rs, _ := registryT(t, "delta")
	src := mixedCache(t)
	mustPush(t, src, rs, "t1", Options{})
	npm := src.CacheDir(mount.NPMCache)
	before := otherSums(t, src)
	blob := make([]byte, 512<<10)
	rng := rand.New(rand.NewPCG(15, 15))
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	testenv.FillNPMCache(t, npm, testenv.NPMPackage{Name: "melc-big", Version: "2.0.0",
		Main: "module.exports = 'big'\n", Extra: map[string][]byte{"blob.bin": blob}})
	var fresh []string
	for k, v := range otherSums(t, src) {
		if rel, ok := strings.CutPrefix(k, "npm/"); ok && strings.HasPrefix(v, "file") && before[k] != v {
			fresh = append(fresh, rel)
		}
	}
	if len(fresh) < 2 {
		t.Fatalf("npm added %v; want the new content and its index bucket", fresh)
	}
	compressed := zstdSizeAt(t, npm, fresh, "-1")
	res := mustPush(t, src, rs, "t2", Options{})
	sent := res.DataBytes + res.MetaBytes
	t.Logf("new npm files %d, tar|zstd -1 %d B; push sent %d data + %d metadata bytes", len(fresh), compressed, res.DataBytes, res.MetaBytes)
	if res.Layers != 1 || float64(sent) > 1.1*float64(compressed) {
		t.Errorf("push sent %d layers, %d bytes; want 1 layer, at most 1.1 x %d", res.Layers, sent, compressed)
	}
	snap, err := FetchSnapshot(context.Background(), rs, "t2")
	if err != nil {
		t.Fatal(err)
	}
	last := snap.Config.Layers[len(snap.Config.Layers)-1]
	if last.Cache != mount.NPMCache || last.Generation != 2 {
		t.Errorf("the new layer is %s generation %d, want npm generation 2", last.Cache, last.Generation)
	}
	checkAllPullsBack(t, rs, "t2", src)
}

func checkAllPullsBack(t *testing.T, s Store, tag string, src mount.Layout) {
	t.Helper()
	dst := newLayout(t)
	if _, err := Pull(context.Background(), dst, s, tag, Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, allSums(t, src), allSums(t, dst))
}

// TestOnlyNPM: push --only npm holds npm alone; pull --only npm (and a pull
// of that snapshot, even with --replace) leaves the other caches exactly
// as they were.
func TestOnlyNPM(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (registry, npm, pip)")
	ctx := context.Background()
	rs, _ := registryT(t, "only")
	src := mixedCache(t)
	others := dirState(t, src.Dir, "npm")
	mustPush(t, src, rs, "npm", Options{Only: []mount.Cache{mount.NPMCache}})
	diffSums(t, others, dirState(t, src.Dir, "npm"))
	snap, err := FetchSnapshot(ctx, rs, "npm")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(snap.Config.Caches, []mount.Cache{mount.NPMCache}) {
		t.Fatalf("push --only npm: config caches %v", snap.Config.Caches)
	}
	for _, e := range snap.Index.Entries {
		if e.Cache != mount.NPMCache {
			t.Fatalf("push --only npm holds %s/%s", e.Cache, e.Path)
		}
	}
	mustPush(t, src, rs, "all", Options{})

	// dst has caches of its own, all different from src's.
	dst := makeCache(t, testenv.TempDir(t))
	writeT(t, filepath.Join(dst.CacheDir(mount.GoCache), "README"), []byte("the builder's own\n"), 0o644)
	writeT(t, filepath.Join(dst.CacheDir(mount.PipCache), "wheels", "x"), []byte("the builder's own\n"), 0o644)
	writeT(t, filepath.Join(dst.CacheDir(mount.NPMCache), "_cacache", "stale"), []byte("old\n"), 0o644)
	addFetch(t, dst, "the builder's own source\n", false)
	for _, o := range []struct {
		tag string
		o   Options
	}{
		{"all", Options{Only: []mount.Cache{mount.NPMCache}, Replace: true}},
		{"npm", Options{Replace: true}},
	} {
		others := dirState(t, dst.Dir, "npm")
		if _, err := Pull(ctx, dst, rs, o.tag, o.o); err != nil {
			t.Fatal(err)
		}
		diffSums(t, others, dirState(t, dst.Dir, "npm"))
		got, want := otherSums(t, dst), otherSums(t, src)
		for k, v := range want {
			if strings.HasPrefix(k, "npm/") && got[k] != v {
				t.Errorf("pull %s %+v: %s is %q, want %q", o.tag, o.o.Only, k, got[k], v)
			}
		}
		if _, ok := got["npm/_cacache/stale"]; ok {
			t.Errorf("pull %s --replace kept a local npm file", o.tag)
		}
	}
}

// TestPullKeepsWriteTimesOfOtherCaches: caches without Go's use marks keep
// their files' write times through a pull (prune --max-age reads them): a
// file a merge pull reuses keeps its mtime, one it writes gets the time of
// writing, never Go's "used two hours ago".
func TestPullKeepsWriteTimesOfOtherCaches(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	old := filepath.Join(src.CacheDir(mount.NPMCache), "old")
	writeT(t, old, []byte("downloaded long ago\n"), 0o644)
	ancient := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(old, ancient, ancient); err != nil {
		t.Fatal(err)
	}
	s := newMemStore()
	mustPush(t, src, s, "k", Options{})
	if _, err := Pull(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(old); err != nil || !fi.ModTime().Equal(ancient) {
		t.Errorf("a merge pull reusing %s changed its mtime to %v (%v), want %v", old, fi.ModTime(), err, ancient)
	}
	dst := makeCache(t, testenv.TempDir(t))
	before := time.Now().Add(-time.Minute)
	if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dst.CacheDir(mount.NPMCache), "old")
	if fi, err := os.Stat(p); err != nil || fi.ModTime().Before(before) {
		t.Errorf("%s written by a pull has mtime %v (%v), want the time of writing", p, fi.ModTime(), err)
	}
}
