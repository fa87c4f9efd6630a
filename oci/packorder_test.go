package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// addBuild writes n GOCACHE actions with Go's own -a format, timed from
// start, and their outputs: what one build writes.
func addBuild(t *testing.T, l mount.Layout, build string, start int64, n int) (members map[string]string) {
	t.Helper()
	gc := l.CacheDir(mount.GoCache)
	r := rand.New(rand.NewPCG(uint64(start), 7))
	members = map[string]string{} // tar name of the -a -> tar name of its -d
	for i := range n {
		out := make([]byte, 1024+r.IntN(4096))
		for j := range out {
			out[j] = byte('a' + r.IntN(8))
		}
		o := sha(out)
		writeT(t, filepath.Join(gc, o[:2], o+"-d"), out, 0o644)
		a := sha(fmt.Appendf(nil, "%s action %d", build, i))
		line := fmt.Sprintf("v1 %s %s %20d %20d\n", a, o, len(out), start+int64(i)*1e6)
		writeT(t, filepath.Join(gc, a[:2], a+"-a"), []byte(line), 0o644)
		members["gocache/"+a[:2]+"/"+a+"-a"] = "gocache/" + o[:2] + "/" + o + "-d"
	}
	return members
}

// layerMembers lists the tar members of the snapshot's gocache layer in
// stream order.
func layerMembers(t *testing.T, s *memStore, tag string) []string {
	t.Helper()
	snap, err := FetchSnapshot(context.Background(), s, tag)
	if err != nil {
		t.Fatal(err)
	}
	d := snap.DataLayer(gocacheLayer(t, snap)).Digest
	zr, err := newDecoder(bytes.NewReader(s.blobs[d]))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// TestPackOrderGroupsBuilds: a gocache layer packs each build's actions
// and outputs together, builds in the order Go ran them, whatever their
// hashes; the order depends only on the files, so a copy with other
// mtimes packs to the same layer.
func TestPackOrderGroupsBuilds(t *testing.T) {
	l := makeCache(t, testenv.TempDir(t))
	second := addBuild(t, l, "second", 2_000_000_000_000_000_000, 60)
	first := addBuild(t, l, "first", 1_000_000_000_000_000_000, 60)
	s := newMemStore()
	mustPush(t, l, s, "a", Options{Now: later})
	names := layerMembers(t, s, "a")

	pos := map[string]int{}
	for i, n := range names {
		pos[n] = i
	}
	lastFirst, firstSecond := -1, len(names)
	for _, build := range []map[string]string{first, second} {
		for a, d := range build {
			if pa, pd := pos[a], pos[d]; pa-pd != 1 && pd-pa != 1 {
				t.Errorf("%s at %d and its output %s at %d are not neighbours", a, pa, d, pd)
			}
		}
	}
	for a, d := range first {
		lastFirst = max(lastFirst, pos[a], pos[d])
	}
	for a, d := range second {
		firstSecond = min(firstSecond, pos[a], pos[d])
	}
	if lastFirst >= firstSecond {
		t.Errorf("the first build's files end at member %d, after the second build's start at %d: %s", lastFirst, firstSecond, strings.Join(names, " "))
	}

	// The same files elsewhere, written in another order at other times.
	cp := makeCache(t, testenv.TempDir(t))
	addBuild(t, cp, "first", 1_000_000_000_000_000_000, 60)
	addBuild(t, cp, "second", 2_000_000_000_000_000_000, 60)
	mustPush(t, cp, s, "b", Options{})
	if got := layerMembers(t, s, "b"); strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("a copy packs in another order")
	}
	if a, b := mustFetch(t, s, "a"), mustFetch(t, s, "b"); a.DataLayer(gocacheLayer(t, a)).Digest != b.DataLayer(gocacheLayer(t, b)).Digest {
		t.Errorf("a copy of the same files packs to another gocache layer")
	}
	// The stat cache the first push left knows the output each action
	// names, so the next push orders without reading the actions.
	sc := statCacheOf(t, l)
	for _, build := range []map[string]string{first, second} {
		for a, d := range build {
			r := sc.recs[entryKey{mount.GoCache, strings.TrimPrefix(a, "gocache/")}]
			if got, want := hexSHA(r.out), strings.TrimSuffix(d[len("gocache/NN/"):], "-d"); got != want {
				t.Fatalf("stat cache record of %s names output %q, want %q", a, got, want)
			}
		}
	}
	// Pushed again to a store with no base: the actions come from the stat
	// cache.
	s2 := newMemStore()
	if res := mustPush(t, l, s2, "c", Options{Now: later}); res.StatCached == 0 {
		t.Fatalf("the second push used no stat cache record: %+v", res.ScanStats)
	}
	if got := layerMembers(t, s2, "c"); strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("a push whose stat cache knew the files packs in another order")
	}
}

func mustFetch(t *testing.T, s Store, tag string) *Snapshot {
	t.Helper()
	snap, err := FetchSnapshot(context.Background(), s, tag)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
