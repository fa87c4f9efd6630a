package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/melcache/melcache/mount"
)

// fuzzSnapshot stores a snapshot whose index JSON and data layer are
// attacker-chosen bytes, as a hostile pusher (or a tampering registry) could
// make them. rawLayer uses layer as the compressed blob itself (arbitrary
// zstd frames: bombs, huge windows, garbage); otherwise layer is the tar
// stream and is compressed here, so the tar reader sees it. The config is
// derived from the index when it parses (so the fuzzer gets past the
// consistency checks into extraction), its layer size skewed by slack.
func fuzzSnapshot(s *memStore, indexJSON, layer []byte, rawLayer bool, slack int64) {
	ctx := context.Background()
	blob := layer
	if !rawLayer {
		blob, _ = compressBytes(layer)
	}
	ld := blobDescriptor(LayerMediaType, blob)
	s.WriteBlob(ctx, ld.Digest, ld.Size, openBytes(blob))
	iz, _ := compressBytes(indexJSON)
	id := blobDescriptor(IndexMediaType, iz)
	s.WriteBlob(ctx, id.Digest, id.Size, openBytes(iz))
	declared := int64(len(layer)) + slack
	if declared < 0 {
		declared = 0
	}
	c := &Config{FormatVersion: FormatVersion, Arch: HostArch(), Caches: []mount.Cache{mount.GoModCache, mount.GoCache},
		Indexes: []IndexRef{{Digest: id.Digest, Size: int64(len(indexJSON))}},
		Layers:  []LayerInfo{{Digest: ld.Digest, Cache: mount.GoCache, Generation: 1, Size: declared, FrameSize: pzstdChunk, Frames: []int64{ld.Size}}}}
	var x indexDoc
	if json.Unmarshal(indexJSON, &x) == nil {
		c.Indexes[0].Entries = len(x.Entries) + len(x.Deleted)
		for _, e := range x.Entries {
			if e.Type == TypeFile {
				c.Files++
				c.Size += e.Size
				c.Layers[0].Files++
			}
		}
	}
	cb, _ := encodeJSON(c)
	cd := blobDescriptor(ConfigMediaType, cb)
	s.WriteBlob(ctx, cd.Digest, cd.Size, openBytes(cb))
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactType,
		Config: cd, Layers: []v1.Descriptor{id, ld}}
	mb, _ := encodeJSON(m)
	s.PutManifest(ctx, "fuzz", string(types.OCIManifestSchema1), mb)
}

// fuzzSeedTar builds a tar stream from members for the seed corpus.
func fuzzSeedTar(members ...member) []byte {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, m := range members {
		h := m.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		tw.WriteHeader(&h)
		tw.Write([]byte(m.body))
	}
	tw.Close()
	return tb.Bytes()
}

// fuzzSeedIndex encodes entries as an index document, the files in
// generation 1 at the offsets they would have as consecutive tar members.
func fuzzSeedIndex(entries ...Entry) []byte {
	var at int64
	for i := range entries {
		if e := &entries[i]; e.Type == TypeFile {
			e.Gen, e.Offset = 1, at+tarBlock
			e.Frame = e.Offset / pzstdChunk
			at += tarSizeOf(e.Size)
		}
	}
	b, _ := encodeIndexDoc(entries, nil)
	return b
}

// FuzzLayerReader feeds arbitrary index and data-layer bytes to Pull. Whatever
// the input: no panic; nothing is created outside the cache directory; no
// symlink, device, fifo or setuid file appears in it; no more file bytes are
// written than the index declares; and a refused pull leaves the cache
// directory exactly as it was (no staging dir, no journal).
//
// Run: go test -run XXX -fuzz FuzzLayerReader -fuzztime 10m ./oci
func FuzzLayerReader(f *testing.F) {
	body := "hello"
	sum := sha([]byte(body))
	file := func(p string) Entry {
		return Entry{Cache: mount.GoCache, Path: p, Type: TypeFile, Mode: 0o644, Size: int64(len(body)), SHA256: sum}
	}
	dir := Entry{Cache: mount.GoCache, Path: "d", Type: TypeDir, Mode: 0o755}
	reg := func(name string) member {
		return member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, body: body}
	}
	good := fuzzSeedIndex(dir, file("d/x"), file("y"))
	goodTar := fuzzSeedTar(reg("gocache/d/x"), reg("gocache/y"))
	f.Add(good, goodTar, false, int64(0))
	f.Add(good, goodTar, false, int64(-600))
	f.Add(fuzzSeedIndex(file("../x")), fuzzSeedTar(reg("gocache/../x")), false, int64(0))
	f.Add(fuzzSeedIndex(file("/etc/x")), fuzzSeedTar(reg("/etc/x")), false, int64(0))
	f.Add(fuzzSeedIndex(file("x")), fuzzSeedTar(member{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "gocache/x", Linkname: "/etc"}}), false, int64(0))
	f.Add(fuzzSeedIndex(file("x")), fuzzSeedTar(member{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "gocache/x", Linkname: "/etc/passwd"}}), false, int64(0))
	f.Add(fuzzSeedIndex(file("x")), fuzzSeedTar(member{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "gocache/x"}}), false, int64(0))
	f.Add(fuzzSeedIndex(file("x"), file("x")), fuzzSeedTar(reg("gocache/x"), reg("gocache/x")), false, int64(0))
	f.Add(fuzzSeedIndex(Entry{Cache: mount.GoCache, Path: "x", Type: TypeFile, Mode: 0o4755, Size: 5, SHA256: sum}), fuzzSeedTar(reg("gocache/x")), false, int64(0))
	f.Add(fuzzSeedIndex(file("\xff\xfe")), fuzzSeedTar(reg("gocache/\xff\xfe")), false, int64(0))
	f.Add(fuzzSeedIndex(file(strings.Repeat("n", 300))), fuzzSeedTar(reg("gocache/"+strings.Repeat("n", 300))), false, int64(0))
	zeros := make([]byte, 1<<16)
	zeroTar := fuzzSeedTar(member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "gocache/z", Mode: 0o644}, body: string(zeros)})
	zeroEntry := Entry{Cache: mount.GoCache, Path: "z", Type: TypeFile, Mode: 0o644, Size: int64(len(zeros)), SHA256: sha(zeros)}
	f.Add(fuzzSeedIndex(zeroEntry), zeroTar, false, int64(0))
	bomb, _ := compressBytes(zeroTar)
	f.Add(fuzzSeedIndex(zeroEntry), bomb, true, int64(-60000))
	f.Add([]byte("{}"), []byte("\x28\xb5\x2f\xfd"), true, int64(0))
	f.Add([]byte(`{"formatVersion":2}`), []byte{}, false, int64(0))

	// A corrupt stream is retried as a cut download would be; the fuzzer
	// need not wait between attempts.
	layerRetryBackoff = 0
	f.Fuzz(func(t *testing.T, indexJSON, layer []byte, rawLayer bool, slack int64) {
		if len(indexJSON) > 1<<16 || len(layer) > 1<<20 {
			return
		}
		top := t.TempDir()
		l, err := mount.New(filepath.Join(top, "cache"), mount.Options{})
		if err != nil {
			t.Fatal(err)
		}
		keep := filepath.Join(l.CacheDir(mount.GoCache), "keep")
		os.MkdirAll(filepath.Dir(keep), 0o755)
		os.WriteFile(keep, []byte("old"), 0o644)
		before := fuzzTree(t, top)

		s := newMemStore()
		fuzzSnapshot(s, indexJSON, layer, rawLayer, slack)
		_, pullErr := Pull(context.Background(), l, s, "fuzz", Options{Jobs: 1})

		// Nothing outside the cache directory.
		tops, _ := os.ReadDir(top)
		if len(tops) != 1 || tops[0].Name() != "cache" {
			t.Fatalf("pull created %v next to the cache directory", tops)
		}
		var declared int64
		var x Index
		if json.Unmarshal(indexJSON, &x) == nil {
			for _, e := range x.Entries {
				if e.Type == TypeFile && e.Size > 0 {
					declared += e.Size
				}
			}
		}
		var written int64
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			m := fi.Mode()
			if m&(fs.ModeSymlink|fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeSetuid|fs.ModeSetgid) != 0 {
				t.Fatalf("pull left %s with mode %v", p, m)
			}
			if m.IsRegular() && p != keep && filepath.Base(p) != "trim.txt" && !strings.HasPrefix(p, l.State) {
				written += fi.Size()
			}
			return nil
		})
		if written > declared {
			t.Fatalf("pull wrote %d file bytes, the index declares %d", written, declared)
		}
		if pullErr != nil {
			if after := fuzzTree(t, top); after != before {
				t.Fatalf("refused pull (%v) changed the cache directory:\nbefore:\n%s\nafter:\n%s", pullErr, before, after)
			}
		}
	})
}

// fuzzTree lists every path under root with its type, mode and size, except
// the lock file's directory content (the lock is created on first use).
func fuzzTree(t *testing.T, root string) string {
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if strings.Contains(rel, mount.StateName) {
			if d.Name() == journalName || d.Name() == stagingName {
				b.WriteString(rel + " LEFT BEHIND\n")
			}
			return nil
		}
		fi, _ := d.Info()
		b.WriteString(rel + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			b.WriteString(" " + string(rune('0'+fi.Size()%10)))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}
