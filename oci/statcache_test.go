package oci

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// later is a clock well after every file a test wrote: the stat cache a
// push records with it trusts those files (none was changed within
// racyWindow of it), as it would a cache built minutes before the push.
func later() time.Time { return time.Now().Add(time.Hour) }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func statCacheOf(t testing.TB, l mount.Layout) *statCache {
	t.Helper()
	sc := loadStatCache(l, discard)
	if sc == nil {
		t.Fatal("no readable stat cache")
	}
	return sc
}

// TestStatCacheHashesNothing: a delta push of an unchanged dir hashes no
// file when the stat cache vouches for every one; without it, it hashes
// them all.
func TestStatCacheHashesNothing(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	l := makeCache(t, testenv.TempDir(t))
	putAction(t, l.CacheDir(mount.GoCache), "link hello", []byte("build id\n"), time.Now().UnixNano())
	s := newMemStore()
	first, err := Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	// The full push hashed while packing, and found the half-written -d
	// unfinished: that one file has no digest recorded, and the next push
	// hashes it.
	res, err := Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || res.Hashed != 1 {
		t.Fatalf("second push: %+v; want unchanged, only the half-written -d hashed", res)
	}
	res, err = Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || res.Hashed != 0 || res.StatCached != first.Files+1 {
		t.Fatalf("third push: %+v; want unchanged, nothing hashed, %d files from the stat cache", res, first.Files+1)
	}
	// A partial push keeps the other cache's records.
	if _, err := Push(ctx, l, s, "mods", Options{Now: later, Only: []mount.Cache{mount.GoModCache}}); err != nil {
		t.Fatal(err)
	}
	res, err = Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || res.Hashed != 0 {
		t.Fatalf("push after a --only gomodcache push: %+v; want the gocache records kept, nothing hashed", res)
	}
	if err := os.Remove(filepath.Join(l.State, statCacheName)); err != nil {
		t.Fatal(err)
	}
	res, err = Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || res.Hashed != first.Files+1 || res.StatCached != 0 {
		t.Fatalf("push without a stat cache: %+v; want every file hashed", res)
	}
}

// TestStatCacheRacyAndForged: a stat cache record that matches a file's
// stat but not its content (written by a build, or left by a change the
// timestamps could not show) is trusted only when not racy; trusted, it
// can only make the push keep the base's verified copy, and a pull of the
// result verifies. A racy one is re-hashed, and a forged digest the base
// does not hold makes the file be packed, hashed as packed.
func TestStatCacheRacyAndForged(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	for _, tc := range []struct {
		name  string
		racy  bool   // the record was written within racyWindow of the change
		sha   string // "old": the base's digest; else a digest of nothing real
		wantX string // "old" or "new": what the pushed snapshot holds for X
	}{
		{"racy", true, "old", "new"},
		{"trusted stale", false, "old", "old"},
		{"trusted forged", false, "forged", "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			l := makeCache(t, testenv.TempDir(t))
			x := filepath.Join(l.CacheDir(mount.GoModCache), "cache/download/example.com/m/@v/v1.0.0.info")
			oldX, _ := os.ReadFile(x)
			s := newMemStore()
			if _, err := Push(ctx, l, s, "k", Options{Now: later}); err != nil {
				t.Fatal(err)
			}
			newX := []byte(`{"Version":"v1.0.1"}`) // same size
			writeT(t, x, newX, 0o644)
			fi, err := os.Lstat(x)
			if err != nil {
				t.Fatal(err)
			}
			sc := statCacheOf(t, l)
			key := entryKey{mount.GoModCache, "cache/download/example.com/m/@v/v1.0.0.info"}
			r := sc.recs[key]
			st := statOf(fi, "")
			r.size, r.mtime, r.ctime, r.ino = st.size, st.mtime, st.ctime, st.ino
			r.sha = rawSHA(sha(oldX))
			if tc.sha == "forged" {
				r.sha = rawSHA(sha([]byte("forged")))
			}
			sc.recs[key] = r
			sc.since = st.ctime + int64(time.Hour)
			if tc.racy {
				sc.since = st.ctime + int64(time.Second)
			}
			if err := sc.save(l); err != nil {
				t.Fatal(err)
			}
			res, err := Push(ctx, l, s, "k", Options{Now: later})
			if err != nil {
				t.Fatal(err)
			}
			if tc.racy && res.Hashed == 0 {
				t.Fatalf("push: %+v; want the racy record's file re-hashed", res)
			}
			dst := newLayout(t)
			if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
				t.Fatalf("pull of the pushed snapshot: %v", err)
			}
			got, _ := os.ReadFile(filepath.Join(dst.CacheDir(mount.GoModCache), "cache/download/example.com/m/@v/v1.0.0.info"))
			want := map[string][]byte{"old": oldX, "new": newX}[tc.wantX]
			if string(got) != string(want) {
				t.Fatalf("pulled %q, want the %s content %q (push %+v)", got, tc.wantX, want, res)
			}
		})
	}
}

// TestStatCacheIgnoredWhenBad: a stat cache that is garbage, truncated, a
// link or of another version is ignored: the push hashes every file and
// succeeds.
func TestStatCacheIgnoredWhenBad(t *testing.T) {
	ctx := context.Background()
	l := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	first, err := Push(ctx, l, s, "k", Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(l.State, statCacheName))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(l.State, statCacheName)
	other := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(other, good, 0o644); err != nil {
		t.Fatal(err)
	}
	oldVersion, _ := compressBytes([]byte("melcache statcache\x00\x00"))
	for name, plant := range map[string]func() error{
		"garbage":   func() error { return os.WriteFile(p, []byte("not zstd"), 0o644) },
		"truncated": func() error { return os.WriteFile(p, good[:len(good)/2], 0o644) },
		"version":   func() error { return os.WriteFile(p, oldVersion, 0o644) },
		"link":      func() error { os.Remove(p); return os.Symlink(other, p) },
	} {
		t.Run(name, func(t *testing.T) {
			if err := plant(); err != nil {
				t.Fatal(err)
			}
			res, err := Push(ctx, l, s, "k", Options{Now: later})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Unchanged || res.StatCached != 0 || res.Hashed != first.Files+1 {
				t.Fatalf("push over a %s stat cache: %+v; want it ignored, every file hashed", name, res)
			}
			if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("the push did not replace the %s stat cache with its own: %v %v", name, fi, err)
			}
		})
	}
	if b, _ := os.ReadFile(other); string(b) != string(good) {
		t.Fatal("a push wrote through the planted link")
	}
}

// TestStatCacheRoundTrip encodes and decodes 100k records (the size of a
// large fleet cache) and refuses a record an index would refuse.
func TestStatCacheRoundTrip(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	sc := newStatCache(time.Unix(1764410000, 0))
	for i := range 100_000 {
		h := sha([]byte(strconv.Itoa(i)))
		c, p := mount.GoCache, h[:2]+"/"+h+"-a"
		if i%4 == 0 {
			c, p = mount.GoModCache, "cache/download/example.com/m"+strconv.Itoa(i)+"/@v/v1.0.0.zip"
		}
		sc.recs[entryKey{c, p}] = statRecord{size: int64(i), mtime: 1764400000e9 + int64(i), ctime: 1764400001e9,
			ino: uint64(i) + 1e6, sha: rawSHA(h), goTime: int64(i % 3 * 1e18), class: mount.OutputClass(i % 4)}
	}
	b, err := sc.encode()
	if err != nil {
		t.Fatal(err)
	}
	start, cpu0 := time.Now(), cpuTime()
	got, err := decodeStatCache(b)
	if err != nil {
		t.Fatal(err)
	}
	// Logged, not asserted (no timed assertions in unit tests); the CPU
	// time says more than the wall time on a loaded machine.
	t.Logf("100k records: %d bytes compressed, decoded in %v (%v CPU)", len(b), time.Since(start), cpuTime()-cpu0)
	if got.since != sc.since || len(got.recs) != len(sc.recs) {
		t.Fatalf("decoded %d records since %d, want %d since %d", len(got.recs), got.since, len(sc.recs), sc.since)
	}
	for k, r := range sc.recs {
		if got.recs[k] != r {
			t.Fatalf("record %v: got %+v, want %+v", k, got.recs[k], r)
		}
	}
	for name, k := range map[string]entryKey{
		"escaping path": {mount.GoCache, "../x"},
		"unknown cache": {mount.Cache("apkcache"), "x"},
	} {
		bad := newStatCache(time.Now())
		bad.recs[k] = statRecord{sha: rawSHA(sha(nil))}
		b, err := bad.encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeStatCache(b); err == nil {
			t.Errorf("a stat cache with an %s decoded", name)
		}
	}
}

// TestStatCacheStateFile: the stat cache is written atomically inside the
// state directory and never through a link planted at the state dir.
func TestStatCacheStateFile(t *testing.T) {
	l := makeCache(t, testenv.TempDir(t))
	sc := newStatCache(time.Now())
	if err := sc.save(l); err != nil {
		t.Fatal(err)
	}
	if b, err := mount.ReadStateBytes(l, statCacheName, maxStatCacheBytes); err != nil || len(b) == 0 {
		t.Fatalf("read back: %d bytes, %v", len(b), err)
	}
	if _, err := mount.ReadStateBytes(l, statCacheName, 4); err == nil {
		t.Fatal("a stat cache over the limit was read")
	}
	_ = fsutil.RemoveAll(l.State)
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, l.State); err != nil {
		t.Fatal(err)
	}
	if err := sc.save(l); err == nil {
		t.Fatal("the stat cache was written through a link at the state directory")
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Fatalf("wrote %v through the link", ents)
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
