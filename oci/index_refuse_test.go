package oci

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/melcache/melcache/mount"
)

// chainSnapshot pushes a snapshot "k" whose chain holds two documents: the
// full one and a delta with one changed file and one deletion.
func chainSnapshot(t *testing.T) *memStore {
	t.Helper()
	ctx := context.Background()
	src := smallCache(t, 30)
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	writeT(t, smallPath(src, 3), []byte("changed"), 0o644)
	os.Remove(smallPath(src, 4))
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// resign rewrites snapshot "k": edit changes the config and the decoded
// index documents, which are then encoded, stored and named again, so
// that only the edit is wrong, not a digest.
func resign(t *testing.T, s *memStore, edit func(*Config, []*indexDoc)) {
	t.Helper()
	ctx := context.Background()
	snap, err := FetchSnapshot(ctx, s, "k")
	if err != nil {
		t.Fatal(err)
	}
	c := *snap.Config
	c.Indexes = append([]IndexRef(nil), c.Indexes...)
	c.Layers = append([]LayerInfo(nil), c.Layers...)
	var docs []*indexDoc
	for i, d := range snap.IndexLayers() {
		b, _, err := readIndexBlob(ctx, s, d, c.Indexes[i].Size)
		if err != nil {
			t.Fatal(err)
		}
		var doc indexDoc
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, &doc)
	}
	edit(&c, docs)
	m := *snap.Manifest
	m.Layers = append([]v1.Descriptor(nil), m.Layers...)
	for i, doc := range docs {
		b, _ := encodeIndexDoc(doc.Entries, doc.Deleted)
		z, _ := compressBytes(b)
		d := blobDescriptor(IndexMediaType, z)
		s.WriteBlob(ctx, d.Digest, d.Size, openBytes(z))
		if i < len(c.Indexes) {
			c.Indexes[i].Digest, c.Indexes[i].Size = d.Digest, int64(len(b))
		}
		if i < len(m.Layers) {
			m.Layers[i] = d
		}
	}
	cb, _ := encodeJSON(&c)
	m.Config = blobDescriptor(ConfigMediaType, cb)
	s.WriteBlob(ctx, m.Config.Digest, m.Config.Size, openBytes(cb))
	mb, _ := encodeJSON(&m)
	if _, err := s.PutManifest(ctx, "k", string(types.OCIManifestSchema1), mb); err != nil {
		t.Fatal(err)
	}
}

// fileIn returns the first file entry of doc.
func fileIn(t *testing.T, doc *indexDoc) *Entry {
	for i := range doc.Entries {
		if doc.Entries[i].Type == TypeFile {
			return &doc.Entries[i]
		}
	}
	t.Fatal("no file entry")
	return nil
}

// TestPullRefusesBadChain: a tampered index document, a frame table that
// does not add up, positions outside their layer and chains that do not
// apply are refused, and the cache directory stays as it was.
func TestPullRefusesBadChain(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	cases := []struct {
		name string
		edit func(*testing.T, *memStore)
		want string
	}{
		{"tampered document", func(t *testing.T, s *memStore) {
			snap, _ := FetchSnapshot(context.Background(), s, "k")
			b := s.blobs[snap.IndexLayers()[1].Digest]
			b[len(b)/2] ^= 0x40
		}, "content digest"},
		{"frames total", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, _ []*indexDoc) { c.Layers[0].Frames[0]++ })
		}, "frames total"},
		{"frame count", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, _ []*indexDoc) { c.Layers[0].Frames = append(c.Layers[0].Frames, 1) })
		}, "frames for"},
		{"no frame size", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, _ []*indexDoc) { c.Layers[0].FrameSize = 0 })
		}, "frameSize 0"},
		{"offset past the layer", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, d []*indexDoc) {
				e := fileIn(t, d[1])
				e.Offset = c.Layers[len(c.Layers)-1].Size
			})
		}, "not inside its"},
		{"offset inside a header", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, d []*indexDoc) { fileIn(t, d[0]).Offset += 100 })
		}, "not inside its"},
		{"another member's offset", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, d []*indexDoc) {
				var files []*Entry
				for i := range d[0].Entries {
					if d[0].Entries[i].Type == TypeFile {
						files = append(files, &d[0].Entries[i])
					}
				}
				files[0].Offset, files[1].Offset = files[1].Offset, files[0].Offset
			})
		}, "is at offset"},
		{"wrong frame", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, d []*indexDoc) { fileIn(t, d[0]).Frame = 1 })
		}, "frame 1, but offset"},
		{"unknown generation", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, d []*indexDoc) { fileIn(t, d[1]).Gen = 7 })
		}, "names generation 7"},
		{"duplicate generation", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, _ []*indexDoc) { c.Layers[len(c.Layers)-1].Generation = 1 })
		}, "two gocache layers of generation 1"},
		{"deleting a missing entry", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, d []*indexDoc) {
				d[1].Deleted = append(d[1].Deleted, EntryRef{Cache: mount.GoCache, Path: "nope"})
				c.Indexes[1].Entries++
			})
		}, "deletes gocache/nope"},
		{"first document deletes", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, d []*indexDoc) {
				d[0].Deleted = d[1].Deleted
				c.Indexes[0].Entries += len(d[1].Deleted)
			})
		}, "first index document deletes"},
		{"entry count lies", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, _ []*indexDoc) { c.Indexes[1].Entries++ })
		}, "config declares"},
		{"chain shorter than the manifest's", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, _ []*indexDoc) { c.Indexes = c.Indexes[:1] })
		}, "index documents"},
		{"unknown cache", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, _ []*indexDoc) { c.Caches = append(c.Caches, "yarn") })
		}, `unknown cache "yarn"`},
		{"goTime off an -a entry", func(t *testing.T, s *memStore) {
			resign(t, s, func(c *Config, d []*indexDoc) { fileIn(t, d[0]).GoTime = 1 })
		}, "goTime"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case pushes and edits its own store
			s := chainSnapshot(t)
			tc.edit(t, s)
			dst := newLayout(t)
			writeT(t, filepath.Join(dst.CacheDir(mount.GoCache), "keep"), []byte("old"), 0o644)
			before := fuzzTree(t, dst.Dir)
			_, err := Pull(context.Background(), dst, s, "k", Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if after := fuzzTree(t, dst.Dir); after != before {
				t.Fatalf("refused pull changed the cache directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
