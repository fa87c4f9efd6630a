package cacheprog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// snapshotFixture pushes to a layout a cache of n objects of 300 KiB of
// random bytes (the gocache layer spans frames), plus hostile entries:
// an -a naming an output the snapshot lacks, an -a stored under another
// action's name, and a gomodcache file named like an -a entry. It
// returns the store, the snapshot and the bodies by action.
func snapshotFixture(t *testing.T, n int) (oci.Store, *oci.Snapshot, map[ID][]byte, []ID) {
	t.Helper()
	ctx := context.Background()
	l, err := mount.New(filepath.Join(t.TempDir(), "src"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(l.CacheDir(mount.GoModCache), 0o755)
	st, err := OpenStore(l.CacheDir(mount.GoCache), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	bodies := map[ID][]byte{}
	for i := range n {
		body := make([]byte, 300<<10)
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		a, _ := ParseID(actionID("obj" + strconv.Itoa(i)))
		out, _ := ParseID(outputOf(body))
		if _, err := st.Put(ctx, a, out, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		bodies[a] = body
	}
	gc := l.CacheDir(mount.GoCache)
	writeEntry := func(dir string, id ID, e mount.ActionEntry) {
		p := filepath.Join(dir, id.name("a"))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, e.Format(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dangling, _ := ParseID(actionID("dangling"))
	writeEntry(gc, dangling, mount.ActionEntry{ID: dangling.String(), Out: hexOf(outputOf([]byte("absent"))), Size: 6, Time: time.Now()})
	renamed, _ := ParseID(actionID("renamed"))
	var some ID
	for a := range bodies {
		some = a
		break
	}
	writeEntry(gc, renamed, mount.ActionEntry{ID: some.String(), Out: hexOf(outputOf(bodies[some])), Size: int64(len(bodies[some])), Time: time.Now()})
	modOnly, _ := ParseID(actionID("in gomodcache"))
	writeEntry(l.CacheDir(mount.GoModCache), modOnly, mount.ActionEntry{ID: modOnly.String(), Out: hexOf(outputOf(bodies[some])), Size: int64(len(bodies[some])), Time: time.Now()})

	s := oci.NewLayoutStore(filepath.Join(t.TempDir(), "layout"))
	if _, err := oci.Push(ctx, l, s, "t", oci.Options{}); err != nil {
		t.Fatal(err)
	}
	snap, err := oci.FetchSnapshot(ctx, s, "t")
	if err != nil {
		t.Fatal(err)
	}
	return s, snap, bodies, []ID{dangling, renamed, modOnly}
}

// lazyStore opens an empty store served by a SnapshotRemote on snap,
// counting into stats (nil counts nothing).
func lazyStore(t *testing.T, s oci.Store, snap *oci.Snapshot, stats *Stats) (*Store, *SnapshotRemote) {
	t.Helper()
	r, err := NewSnapshotRemote(s, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(filepath.Join(t.TempDir(), "gocache"), StoreOptions{Remote: r, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	r.attach(st)
	t.Cleanup(func() { r.Close(); st.Close() })
	return st, r
}

// TestSnapshotRemote: every object comes back from the snapshot as it was
// put, each frame is fetched once (later gets are served by what earlier
// frames left), and hostile entries are misses: an -a naming an output the
// snapshot lacks, an -a under another action's name, a gomodcache file
// named like an entry. Nothing but Go's own well-formed entries is written.
func TestSnapshotRemote(t *testing.T) {
	s, snap, bodies, hostile := snapshotFixture(t, 40)
	st, r := lazyStore(t, s, snap, nil)
	ctx := context.Background()
	for a, body := range bodies {
		obj, ok, err := st.Get(ctx, a)
		if err != nil || !ok {
			t.Fatalf("get %s: %v, %v", a, ok, err)
		}
		if got, _ := os.ReadFile(obj.DiskPath); !bytes.Equal(got, body) {
			t.Fatalf("get %s: DiskPath holds %d other bytes", a, len(got))
		}
	}
	frames := 0
	for _, l := range snap.Config.Layers {
		if l.Cache == mount.GoCache {
			frames += len(l.Frames)
		}
	}
	if got := r.r.Fetches(); got > int64(frames) {
		t.Errorf("%d range requests for %d frames: frames fetched again", got, frames)
	}
	for i, a := range hostile {
		c := mount.GoCache
		if i == 2 {
			c = mount.GoModCache
		}
		if _, ok := r.r.Lookup(c, a.name("a")); !ok {
			t.Fatalf("hostile entry %s is not in the snapshot's %s", a, c)
		}
		if _, ok, err := st.Get(ctx, a); ok || err != nil {
			t.Errorf("hostile entry %s: hit %v, %v; want a miss", a, ok, err)
		}
		if _, err := os.Lstat(filepath.Join(st.Dir(), a.name("a"))); err == nil {
			t.Errorf("hostile entry %s was written", a)
		}
	}
	r.Close() // prefetches and neighbour writes done
	// Nor was any written ahead from a fetched frame.
	for _, a := range hostile {
		if _, err := os.Lstat(filepath.Join(st.Dir(), a.name("a"))); err == nil {
			t.Errorf("hostile entry %s was written ahead", a)
		}
	}
	checkGoEntries(t, st.Dir())
}

// TestSnapshotRemoteWritesAhead: the action entries of a fetched frame are
// written to the Store once their outputs are there, before any get asks:
// the next get of one is a local hit with no range request, and the
// report counts it as a remote fetch of its bytes, with no wait.
func TestSnapshotRemoteWritesAhead(t *testing.T) {
	s, snap, bodies, _ := snapshotFixture(t, 40)
	var stats Stats
	st, r := lazyStore(t, s, snap, &stats)
	ctx := context.Background()
	var first ID
	for a := range bodies {
		first = a
		break
	}
	if _, ok, err := st.Get(ctx, first); !ok || err != nil {
		t.Fatalf("get %s: %v, %v", first, ok, err)
	}
	r.r.Wait() // the frame's files handed out
	fetches := r.r.Fetches()
	var ahead []ID
	for a := range bodies {
		if _, err := os.Lstat(filepath.Join(st.Dir(), a.name("a"))); a != first && err == nil {
			ahead = append(ahead, a)
		}
	}
	if len(ahead) == 0 {
		t.Fatal("no action entry of the fetched frames was written ahead")
	}
	var want int64 = int64(len(bodies[first]))
	for _, a := range ahead {
		obj, ok, done, err := st.getNow(a)
		if !ok || !done || err != nil {
			t.Fatalf("get %s written ahead: hit %v, answered now %v, %v", a, ok, done, err)
		}
		if got, _ := os.ReadFile(obj.DiskPath); !bytes.Equal(got, bodies[a]) {
			t.Fatalf("get %s: DiskPath holds other bytes", a)
		}
		want += obj.Size
	}
	if got := r.r.Fetches(); got != fetches {
		t.Errorf("%d range requests after the gets of entries written ahead, want %d", got, fetches)
	}
	// Asked again, an entry written ahead is a plain hit: counted once.
	st.getNow(ahead[0])
	if rep := stats.Report(); rep.RemoteFetches != int64(1+len(ahead)) || rep.RemoteBytes != want {
		t.Errorf("report %+v: want %d remote fetches of %d bytes", rep, 1+len(ahead), want)
	}
}

// TestSnapshotRemoteTampered: a data layer changed in the store after the
// push: the objects whose bytes changed are misses and nothing of them is
// written; the others are served intact.
func TestSnapshotRemoteTampered(t *testing.T) {
	s, snap, bodies, _ := snapshotFixture(t, 24)
	for i, l := range snap.Config.Layers {
		if l.Cache != mount.GoCache {
			continue
		}
		blob := filepath.Join(s.(*oci.LayoutStore).Dir(), "blobs", "sha256", snap.DataLayer(i).Digest.Hex)
		b, err := os.ReadFile(blob)
		if err != nil {
			t.Fatal(err)
		}
		for off := len(b) / 8; off < len(b); off += len(b) / 8 {
			b[off] ^= 0x55
		}
		os.WriteFile(blob, b, 0o644)
	}
	st, r := lazyStore(t, s, snap, nil)
	misses := 0
	for a, body := range bodies {
		obj, ok, err := st.Get(context.Background(), a)
		switch {
		case err != nil:
			t.Fatalf("get %s: %v", a, err)
		case !ok:
			misses++
			if _, err := os.Lstat(filepath.Join(st.Dir(), a.name("a"))); err == nil {
				t.Errorf("refused action %s was written", a)
			}
		default:
			if got, _ := os.ReadFile(obj.DiskPath); !bytes.Equal(got, body) {
				t.Errorf("get %s: tampered bytes served", a)
			}
		}
	}
	if misses == 0 {
		t.Error("no object was refused")
	}
	r.Close()
	checkGoEntries(t, st.Dir())
}

// checkGoEntries: every file in dir is a -d named by its SHA-256 or an -a
// naming its own action, in its shard.
func checkGoEntries(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		id, kind, ok := parseEntryName(filepath.ToSlash(rel))
		if !ok {
			t.Errorf("%s written: not a Go cache entry name", rel)
			return nil
		}
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		switch {
		case kind == "d" && hex.EncodeToString(sum[:]) != id.String():
			t.Errorf("%s: content is not its name", rel)
		case kind == "a":
			if _, err := mount.ParseActionEntry(b, id.String()); err != nil || strings.Count(string(b), "\n") != 1 {
				t.Errorf("%s: %v", rel, err)
			}
		}
		return nil
	})
}

// TestOpenRemoteFormat1Pulls: a version 1 snapshot (no file positions) is
// pulled whole, gocache only, before serving, with a log line saying so;
// the session is then local (no Remote).
func TestOpenRemoteFormat1Pulls(t *testing.T) {
	ctx := context.Background()
	layout := filepath.Join(t.TempDir(), "v1snap")
	if err := os.CopyFS(layout, os.DirFS("../oci/testdata/v1snap")); err != nil {
		t.Fatal(err)
	}
	l, err := mount.New(filepath.Join(t.TempDir(), "D"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r, err := OpenRemote(ctx, l, oci.NewLayoutStore(layout), "v1", nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || r != nil {
		t.Fatalf("OpenRemote of a format 1 snapshot: %v, %v; want a pull and no remote", r, err)
	}
	if !strings.Contains(logs.String(), "format 1") {
		t.Errorf("no log line about the full pull:\n%s", logs.String())
	}
	n := 0
	filepath.WalkDir(l.CacheDir(mount.GoCache), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, "-d") {
			n++
		}
		return nil
	})
	if n == 0 {
		t.Error("the gocache was not pulled")
	}
	if _, err := os.Stat(l.CacheDir(mount.GoModCache)); !os.IsNotExist(err) {
		t.Errorf("gomodcache touched: %v", err)
	}
}

// TestSnapshotRemoteWriteAheadCountsOnce: the frame fetched for a get
// holds that action's own -a, which the neighbour hook sees too; asked
// again (a second go command of the same bridge, or the same action
// twice), the entry is a local hit and the report still counts one
// remote fetch of its bytes.
func TestSnapshotRemoteWriteAheadCountsOnce(t *testing.T) {
	s, snap, bodies, _ := snapshotFixture(t, 40)
	var stats Stats
	st, r := lazyStore(t, s, snap, &stats)
	ctx := context.Background()
	for a, body := range bodies {
		if _, ok, err := st.Get(ctx, a); !ok || err != nil {
			t.Fatalf("get %s: %v, %v", a, ok, err)
		}
		r.r.Wait() // the frame's files handed out, this action's -a included
		if _, ok, done, err := st.getNow(a); !ok || !done || err != nil {
			t.Fatalf("get %s again: hit %v, answered now %v, %v", a, ok, done, err)
		}
		if rep := stats.Report(); rep.RemoteFetches != 1 || rep.RemoteBytes != int64(len(body)) {
			t.Errorf("report %+v: want 1 remote fetch of %d bytes", rep, len(body))
		}
		break
	}
}

// TestSnapshotRemoteWriteAheadKeepsLocal: an action the local cache
// already holds (the build's own entry, naming another output) is not
// replaced by the snapshot's from a fetched frame, and a hit of it is not
// counted as taken from the snapshot: only a local miss is.
func TestSnapshotRemoteWriteAheadKeepsLocal(t *testing.T) {
	s, snap, bodies, _ := snapshotFixture(t, 40)
	var stats Stats
	st, r := lazyStore(t, s, snap, &stats)
	ctx := context.Background()
	var first ID
	own := map[ID][]byte{} // every other action, built locally to other bytes
	for a := range bodies {
		if first == (ID{}) {
			first = a
			continue
		}
		body := []byte("built here: " + a.String())
		out, _ := ParseID(outputOf(body))
		if _, err := st.Put(ctx, a, out, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		own[a] = body
	}
	if _, ok, err := st.Get(ctx, first); !ok || err != nil {
		t.Fatalf("get %s: %v, %v", first, ok, err)
	}
	r.r.Wait() // the fetched frames' files handed out
	for a, body := range own {
		obj, ok, _, err := st.getNow(a)
		if !ok || err != nil {
			t.Fatalf("get %s: hit %v, %v", a, ok, err)
		}
		if got, _ := os.ReadFile(obj.DiskPath); !bytes.Equal(got, body) {
			t.Errorf("get %s: the local entry was replaced by the snapshot's", a)
		}
	}
	if rep := stats.Report(); rep.RemoteFetches != 1 || rep.RemoteBytes != int64(len(bodies[first])) {
		t.Errorf("report %+v: want 1 remote fetch of %d bytes", rep, len(bodies[first]))
	}
}
