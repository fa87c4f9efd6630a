package oci

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/mount"
)

// TestModIndexNotSnapshotted: a module-index output and the action entry
// naming it are left out of the snapshot and counted, on a full push and
// on a delta push that takes them from the stat cache; other outputs and
// actions stay.
func TestModIndexNotSnapshotted(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	l := makeCache(t, testenv.TempDir(t))
	gc := l.CacheDir(mount.GoCache)
	now := time.Now().UnixNano()
	idx := []byte("go index v2\n\x00\x01 the index of a package's files")
	ai := putAction(t, gc, "modindex std", idx, now)
	keep := putAction(t, gc, "compile fmt", []byte("!<arch>\nfmt\n"), now)
	s := newMemStore()
	for i, o := range []Options{{Now: later}, {Now: later}, {}} {
		res, err := Push(ctx, l, s, "k", o)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(len(idx) + mount.ActionEntryLen)
		if res.ModIndex != 2 || res.ModIndexBytes != want {
			t.Fatalf("push %d: %+v; want 2 module-index entries (%d bytes) skipped", i+1, res, want)
		}
		if i == 1 && res.StatCached == 0 {
			t.Fatalf("push %d: %+v; want the entries from the stat cache", i+1, res)
		}
	}
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	o := sha(idx)
	have := map[string]bool{}
	for _, e := range snap.Index.Entries {
		have[string(e.Cache)+"/"+e.Path] = true
	}
	for p, want := range map[string]bool{
		"gocache/" + gcRel(l, ai):                         false,
		"gocache/" + o[:2] + "/" + o + "-d":               false,
		"gocache/" + gcRel(l, keep):                       true,
		"gomodcache/cache/download/example.com/m/@v/list": true,
	} {
		if have[p] != want {
			t.Errorf("snapshot holds %s: %v, want %v", p, have[p], want)
		}
	}
}

// TestModIndexRealGo: a real `go list std` and a real build into fresh
// caches; the push leaves out every module-index entry (the outputs Go's
// modindex writes, and the action entries naming them) and only those.
// It logs what that saves.
func TestModIndexRealGo(t *testing.T) {
	testenv.SkipShort(t, "real Go build (fresh caches)")
	ctx := context.Background()
	l := newLayout(t)
	env := testenv.GoEnv{ModCache: l.CacheDir(mount.GoModCache), Cache: l.CacheDir(mount.GoCache)}
	cmd := exec.Command("go", "list", "std")
	cmd.Env = env.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go list std: %v\n%s", err, out)
	}
	testenv.GoBuild(t, secondProgram(t), env, ".")
	s := newMemStore()
	res, err := Push(ctx, l, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	gc := l.CacheDir(mount.GoCache)
	kept := map[string]bool{}
	for _, e := range snap.Index.Entries {
		if e.Cache == mount.GoCache && e.Type == TypeFile {
			kept[e.Path] = true
		}
	}
	// Classify every local GOCACHE entry with mount's classifier.
	var total, modIndex int
	var modIndexBytes int64
	err = filepath.WalkDir(gc, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel := gcRel(l, p)
		class := mount.OutputOther
		switch {
		case strings.HasSuffix(rel, "-a"):
			if class, err = mount.ClassifyAction(gc, p); err != nil {
				return err
			}
		case isGoCacheData(rel):
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			class = mount.ClassifyOutput(f)
			f.Close()
		default:
			return nil
		}
		total++
		if class == mount.OutputModIndex {
			modIndex++
			fi, _ := d.Info()
			modIndexBytes += fi.Size()
		}
		if kept[rel] == (class == mount.OutputModIndex) {
			t.Errorf("%s (%s): in the snapshot %v", rel, class, kept[rel])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if modIndex == 0 || res.ModIndex != modIndex || res.ModIndexBytes != modIndexBytes {
		t.Fatalf("push skipped %d module-index entries (%d bytes); the cache holds %d (%d bytes)", res.ModIndex, res.ModIndexBytes, modIndex, modIndexBytes)
	}
	t.Logf("go list std + a small build: %d of %d GOCACHE entries are module-index entries (%s), left out; snapshot %d files, %s data, %s index",
		modIndex, total, units.FormatSize(modIndexBytes), res.Files, units.FormatSize(res.DataBytes), units.FormatSize(snap.IndexBytes))
}

func isGoCacheData(p string) bool { _, ok := goCacheDataID(p); return ok }
