package oci

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// addOutputs writes n GOCACHE outputs of about size bytes, with their
// action (-a) entries, into l: text drawn from a small vocabulary, so it
// compresses about as object files do (2-3x), and different for every
// seed.
func addOutputs(t testing.TB, l mount.Layout, seed uint64, n, size int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0x6d656c))
	words := make([]string, 512)
	for i := range words {
		b := make([]byte, 3+r.IntN(8))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		words[i] = string(b)
	}
	gc := l.CacheDir(mount.GoCache)
	for i := 0; i < n; i++ {
		var sb strings.Builder
		for sb.Len() < size {
			sb.WriteString(words[r.IntN(len(words))])
			sb.WriteByte(" \n"[r.IntN(2)])
		}
		out := []byte(sb.String())
		o := sha(out)
		writeT(t, filepath.Join(gc, o[:2], o+"-d"), out, 0o644)
		a := sha(fmt.Appendf(nil, "action %d %d", seed, i))
		writeT(t, filepath.Join(gc, a[:2], a+"-a"), []byte(indexLine(a, o, len(out))), 0o644)
	}
}

// baseCache is makeCache plus enough outputs that a full push is clearly
// more than a delta.
func baseCache(t testing.TB) mount.Layout {
	t.Helper()
	l := makeCache(t, testenv.TempDir(t))
	addOutputs(t, l, 1, 120, 8<<10)
	return l
}

// testLog is a logger writing to the test's log, so a failure shows which
// rules were tried.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func mustPush(t *testing.T, l mount.Layout, s Store, tag string, o Options) *Result {
	t.Helper()
	if o.Log == nil {
		o.Log = testLog(t)
	}
	res, err := Push(context.Background(), l, s, tag, o)
	if err != nil {
		t.Fatalf("push %s:%s: %v", s, tag, err)
	}
	return res
}

// checkPullsBack pulls s:tag into a fresh dir and compares it with src.
func checkPullsBack(t *testing.T, s Store, tag string, src mount.Layout) {
	t.Helper()
	dst := newLayout(t)
	if _, err := Pull(context.Background(), dst, s, tag, Options{}); err != nil {
		t.Fatalf("pull %s:%s: %v", s, tag, err)
	}
	diffSums(t, treeSums(t, src), treeSums(t, dst))
}

// TestBaseCrossRepositoryMount: a dir pushed to repository A, changed a
// little and pushed to repository B, deltas against A's snapshot (rule
// (d)): the registry's access log shows a mount for each of A's layers and
// no upload of any of them to B, and B's snapshot pulls back whole.
func TestBaseCrossRepositoryMount(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	a := registryStore(t, reg, "cache/a")
	b := registryStore(t, reg, "cache/b")
	src := baseCache(t)
	first := mustPush(t, src, a, "k1", Options{})
	snapA, err := FetchSnapshot(context.Background(), a, first.Digest)
	if err != nil {
		t.Fatal(err)
	}
	addOutputs(t, src, 2, 5, 8<<10)

	res := mustPush(t, src, b, "k2", Options{})
	if res.BaseRule != BaseRuleOtherRepo || res.Base != first.Digest || res.BaseStore != a.String() {
		t.Fatalf("push to B: base %q rule %q from %q; want %s, %q, %s", res.Base, res.BaseRule, res.BaseStore, first.Digest, BaseRuleOtherRepo, a)
	}
	// The delta's index chain starts with A's documents: they are mounted
	// like the data layers.
	if want := len(snapA.Config.Layers) + len(snapA.Config.Indexes); res.BlobsMounted != want {
		t.Errorf("mounted %d blobs, want A's %d data layers and %d index documents", res.BlobsMounted, len(snapA.Config.Layers), len(snapA.Config.Indexes))
	}
	mounts := reg.Requests(t, "POST", "/v2/cache/b/blobs/uploads/?mount=")
	puts := reg.Requests(t, "PUT", "/v2/cache/b/blobs/uploads/")
	patches := reg.Requests(t, "PATCH", "/v2/cache/b/blobs/uploads/")
	for _, li := range snapA.Config.Layers {
		mounted := false
		for _, m := range mounts {
			mounted = mounted || strings.Contains(m, "?mount=sha256%3A"+li.Digest.Hex+"&from=cache%2Fa ") && strings.Contains(m, "\" 201 ")
		}
		if !mounted {
			t.Errorf("no successful mount of A's layer %s in the access log:\n%s", li.Digest, strings.Join(mounts, "\n"))
		}
		for _, p := range puts {
			if strings.Contains(p, li.Digest.Hex) {
				t.Errorf("A's layer %s was uploaded to B: %s", li.Digest, p)
			}
		}
	}
	// A PATCH carries no digest; it belongs to an upload session whose
	// closing PUT does, and no PUT names one of A's layers.
	if len(puts) == 0 || len(patches) > len(puts) {
		t.Errorf("B got %d PUTs and %d PATCHes: the PATCHes are not all uploads of new blobs", len(puts), len(patches))
	}
	if res.Layers != 1 || res.DataBytes == 0 {
		t.Errorf("push to B uploaded %d layers (%d bytes), want the one new gocache layer", res.Layers, res.DataBytes)
	}
	checkPullsBack(t, b, "k2", src)
}

// TestBaseForced (rule (a)): --base wins over the dir's own exchanges, as
// a tag, a digest, or a reference to another repository of the registry;
// a --base the store lacks is an error, not a silent full push.
func TestBaseForced(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	s := registryStore(t, reg, "cache/forced")
	other := registryStore(t, reg, "cache/forced-other")
	src := baseCache(t)
	k1 := mustPush(t, src, s, "k1", Options{})
	addOutputs(t, src, 3, 4, 4<<10)
	k2 := mustPush(t, src, s, "k2", Options{})
	if k2.BaseRule != BaseRuleExchanged || k2.Base != k1.Digest {
		t.Fatalf("k2: base %q rule %q; want %s by %q", k2.Base, k2.BaseRule, k1.Digest, BaseRuleExchanged)
	}
	addOutputs(t, src, 4, 4, 4<<10)
	for _, base := range []string{"k1", "@" + k1.Digest, k1.Digest, reg.Host + "/cache/forced:k1"} {
		res := mustPush(t, src, s, "k3", Options{Base: base})
		if res.BaseRule != BaseRuleForced || res.Base != k1.Digest {
			t.Errorf("--base %s: base %q rule %q; want %s", base, res.Base, res.BaseRule, k1.Digest)
		}
	}
	res := mustPush(t, src, other, "x", Options{Base: reg.Host + "/cache/forced@" + k2.Digest})
	if res.BaseRule != BaseRuleForced || res.Base != k2.Digest || res.BaseStore != s.String() || res.BlobsMounted == 0 {
		t.Errorf("--base in another repository: %+v", res)
	}
	checkPullsBack(t, other, "x", src)

	for _, bad := range []string{"nope", "sha256:" + strings.Repeat("0", 64), reg.Host + "/cache/none:k1", "127.0.0.2:5000/cache/forced:k1"} {
		if _, err := Push(context.Background(), src, s, "k4", Options{Base: bad}); err == nil || !strings.Contains(err.Error(), "--base") {
			t.Errorf("--base %s: err %v, want an error naming --base", bad, err)
		}
	}
	for _, bad := range []string{"", "a:b", "sha256:xyz", "oci:/x:t", reg.Host + "/cache/forced"} {
		if _, err := ParseBase(bad); err == nil {
			t.Errorf("ParseBase(%q) accepted", bad)
		}
	}
}

// TestBaseExchangedUnderNewKey (rule (b)) and the size criterion: a push
// under a new key, from a dir that pushed to the same repository, uploads
// at most 1.1x the new files packed on their own at the layers' own zstd
// level (a full push of a dir holding only them). A pull counts as an
// exchange too.
func TestBaseExchangedUnderNewKey(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	s := registryStore(t, reg, "cache/newkey")
	src := baseCache(t)
	first := mustPush(t, src, s, "go-1.26-x86_64-aaaa", Options{})
	firstSnap, err := FetchSnapshot(context.Background(), s, first.Digest)
	if err != nil {
		t.Fatal(err)
	}
	addOutputs(t, src, 5, 12, 8<<10)
	changed := changedFiles(t, src, firstSnap)

	res := mustPush(t, src, s, "go-1.26-x86_64-bbbb", Options{})
	if res.BaseRule != BaseRuleExchanged || res.Base != first.Digest {
		t.Fatalf("new key: base %q rule %q; want %s by %q", res.Base, res.BaseRule, first.Digest, BaseRuleExchanged)
	}
	ref := onlyFiles(t, src, changed)
	want := mustPush(t, ref, NewLayoutStore(filepath.Join(testenv.TempDir(t), "ref")), "ref", Options{})
	if want.Base != "" || want.DataBytes == 0 {
		t.Fatalf("reference push: %+v", want)
	}
	if float64(res.DataBytes) > 1.1*float64(want.DataBytes) {
		t.Errorf("push under a new key uploaded %d data bytes; the %d new files pack to %d (limit 1.1x)", res.DataBytes, len(changed), want.DataBytes)
	}
	if float64(res.DataBytes) > 0.5*float64(first.DataBytes) {
		t.Errorf("delta uploaded %d bytes, the full push %d: no delta", res.DataBytes, first.DataBytes)
	}
	t.Logf("new key: %d bytes uploaded; new files alone %d; full push %d", res.DataBytes, want.DataBytes, first.DataBytes)
	checkPullsBack(t, s, "go-1.26-x86_64-bbbb", src)

	// A dir that only pulled from the repository deltas against what it
	// pulled.
	dst := newLayout(t)
	if _, err := Pull(context.Background(), dst, s, "go-1.26-x86_64-bbbb", Options{}); err != nil {
		t.Fatal(err)
	}
	addOutputs(t, dst, 6, 2, 1<<10)
	pres := mustPush(t, dst, s, "go-1.26-x86_64-cccc", Options{})
	if pres.BaseRule != BaseRuleExchanged || pres.Base != res.Digest || pres.Layers != 1 {
		t.Errorf("push after a pull: %+v", pres)
	}
}

// onlyFiles copies the named files (paths relative to l.Dir) into a fresh
// dir with both caches.
func onlyFiles(t *testing.T, l mount.Layout, names []string) mount.Layout {
	t.Helper()
	out := newLayout(t)
	for _, c := range out.Caches() {
		if err := os.MkdirAll(out.CacheDir(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(l.Dir, n))
		if err != nil {
			t.Fatal(err)
		}
		writeT(t, filepath.Join(out.Dir, n), b, 0o644)
	}
	return out
}

// TestBaseRestoreKeys (rule (c)): a dir that exchanged nothing with the
// repository deltas against the newest tag matching a restore-key prefix,
// by created annotation, not by name.
func TestBaseRestoreKeys(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	s := registryStore(t, reg, "cache/keys")
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	src := baseCache(t)
	newer := mustPush(t, src, s, "go-x-1", Options{Now: at(2 * time.Hour)})
	addOutputs(t, src, 7, 3, 2<<10)
	mustPush(t, src, s, "go-x-2", Options{Now: at(time.Hour)})
	mustPush(t, src, s, "other", Options{Now: at(3 * time.Hour)})

	// A fresh dir holding part of src: it pushed and pulled nothing.
	fresh := baseCache(t)
	addOutputs(t, fresh, 8, 2, 2<<10)
	res := mustPush(t, fresh, s, "go-x-3", Options{RestoreKeys: []string{"nomatch-", "go-x-"}})
	if res.BaseRule != BaseRuleRestoreKey+" go-x-" || res.Base != newer.Digest {
		t.Fatalf("restore-key base %q rule %q; want %s (go-x-1, the newest by created) by %q", res.Base, res.BaseRule, newer.Digest, "restore-key go-x-")
	}
	if res.Layers != 1 {
		t.Errorf("restore-key delta uploaded %d layers, want 1 (gocache)", res.Layers)
	}
	checkPullsBack(t, s, "go-x-3", fresh)

	// No match and no record: a full push.
	lone := baseCache(t)
	full := mustPush(t, lone, registryStore(t, reg, "cache/empty"), "k", Options{RestoreKeys: []string{"go-x-"}})
	if full.Base != "" || full.BaseRule != "" {
		t.Errorf("push with nothing to delta against: base %q rule %q", full.Base, full.BaseRule)
	}
}

// TestBaseVanishedFallsThrough: base records are untrusted and may be
// stale. A record naming a manifest the store no longer holds, a malformed
// record and a registry record naming another registry are each skipped,
// and the next rule decides.
func TestBaseVanishedFallsThrough(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	s := registryStore(t, reg, "cache/vanish")
	other := registryStore(t, reg, "cache/vanish-other")
	src := baseCache(t)

	// Rule (d) candidate: an exchange with another repository.
	od := mustPush(t, src, other, "o", Options{})
	// Rule (c) candidate, pushed by another dir.
	keyed := mustPush(t, baseCache(t), s, "go-k-1", Options{})
	// Rule (b) candidate, then deleted: (b) fails, (c) decides.
	gone := mustPush(t, src, s, "k1", Options{})
	deleteSnapshot(t, s, gone.Digest)
	addOutputs(t, src, 9, 2, 2<<10)
	res := mustPush(t, src, s, "k2", Options{RestoreKeys: []string{"go-k-"}})
	if res.BaseRule != BaseRuleRestoreKey+" go-k-" || res.Base != keyed.Digest {
		t.Fatalf("after the recorded base vanished: base %q rule %q; want %s by restore key", res.Base, res.BaseRule, keyed.Digest)
	}

	// Its record deleted in turn, and no restore key: (d) decides, unless
	// the registry record is forged.
	deleteSnapshot(t, s, res.Digest)
	res = mustPush(t, src, s, "k3", Options{})
	if res.BaseRule != BaseRuleOtherRepo || res.Base != od.Digest {
		t.Fatalf("with (b) gone: base %q rule %q; want %s by %q", res.Base, res.BaseRule, od.Digest, BaseRuleOtherRepo)
	}
	checkPullsBack(t, s, "k3", src)
	deleteSnapshot(t, s, res.Digest)
	reg2 := registryRecordName(reg.Host)
	forged := registryRecord{Recent: []BaseRecord{
		{Store: "127.0.0.2:5000/cache/vanish-other", Digest: od.Digest, Time: time.Now()},
		{Store: reg.Host + "/../x", Digest: od.Digest, Time: time.Now()},
		{Store: other.String(), Digest: "sha256:zz", Time: time.Now()},
		{Store: other.String(), Digest: od.Digest}, // no time
	}}
	if err := writeRecord(src, reg2, forged); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(src, storeRecord(s.String(), src.Caches()), BaseRecord{Store: s.String(), Digest: "../../etc", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	res = mustPush(t, src, s, "k4", Options{})
	if res.Base != "" || res.BaseRule != "" {
		t.Fatalf("forged records chose base %q by %q", res.Base, res.BaseRule)
	}
	checkPullsBack(t, s, "k4", src)

	// A record planted as a link is neither followed nor written through.
	target := filepath.Join(testenv.TempDir(t), "elsewhere.json")
	writeT(t, target, []byte(`{"store":"`+s.String()+`","digest":"`+res.Digest+`","time":"2026-01-01T00:00:00Z"}`), 0o644)
	link := filepath.Join(src.State, storeRecord(s.String(), src.Caches()))
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	res = mustPush(t, src, s, "k5", Options{})
	if res.BaseRule == BaseRuleExchanged {
		t.Errorf("a record planted as a link chose the base %q", res.Base)
	}
	if b, _ := os.ReadFile(target); !strings.Contains(string(b), "2026-01-01") {
		t.Errorf("the push wrote through the planted link: %s", b)
	}
}

// deleteSnapshot deletes the manifest a push made.
func deleteSnapshot(t *testing.T, s Store, digest string) {
	t.Helper()
	d, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteManifest(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// TestBaseNewKeyRealGo is the measured case on a real Go cache:
// push :a, build a second program into the same dir, push under a new key
// (it used to upload everything) and to another repository (mounts). The
// new key's upload is at most 1.1x the new and changed files as
// tar | zstd -1 (the layers' level, klauspost's SpeedFastest); the other
// repository receives none of the layers the first holds.
func TestBaseNewKeyRealGo(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (real Go builds, registry)")
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	work := testenv.TempDir(t)
	testenv.CopyTree(t, testenv.RealCache(t), filepath.Join(work, "src"))
	src, _ := mount.New(filepath.Join(work, "src"), mount.Options{})
	s := registryStore(t, reg, "real/a")
	first := mustPush(t, src, s, "a", Options{})
	firstSnap, err := FetchSnapshot(context.Background(), s, first.Digest)
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.GoEnv{ModCache: src.CacheDir(mount.GoModCache), Cache: src.CacheDir(mount.GoCache)}
	if n, _ := testenv.GoBuild(t, secondProgram(t), env, "."); n == 0 {
		t.Fatal("second program compiled nothing: no delta to test")
	}
	changed := changedFiles(t, src, firstSnap)
	zsize := zstdSizeAt(t, src.Dir, changed, "-1")
	res := mustPush(t, src, s, "ab", Options{})
	if res.BaseRule != BaseRuleExchanged || res.Base != first.Digest {
		t.Fatalf("new key: base %q by %q, want %s", res.Base, res.BaseRule, first.Digest)
	}
	if float64(res.DataBytes) > 1.1*float64(zsize) {
		t.Errorf("push under a new key uploaded %d data bytes; the %d new and changed files are %d as tar|zstd -1 (limit 1.1x)", res.DataBytes, len(changed), zsize)
	}
	t.Logf("new key: %d files changed, %d bytes tar|zstd -1, %d uploaded (full push: %d)", len(changed), zsize, res.DataBytes, first.DataBytes)

	b := registryStore(t, reg, "real/b")
	cross := mustPush(t, src, b, "ab", Options{})
	if cross.BaseRule != BaseRuleOtherRepo || cross.BlobsMounted == 0 || cross.DataBytes != 0 {
		t.Errorf("push to another repository: %+v", cross)
	}
	snapA, err := FetchSnapshot(context.Background(), s, res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for _, li := range snapA.Config.Layers {
		for _, p := range reg.Requests(t, "PUT", "/v2/real/b/blobs/uploads/") {
			if strings.Contains(p, li.Digest.Hex) {
				t.Errorf("layer %s, held by real/a, was uploaded to real/b", li.Digest)
			}
		}
	}
	checkPullsBack(t, b, "ab", src)
}
