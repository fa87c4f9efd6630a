package oci

import (
	"archive/tar"
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

// editManifest rewrites the "bad" manifest of a crafted snapshot.
func editManifest(t *testing.T, s *memStore, edit func(*v1.Manifest)) {
	t.Helper()
	_, mb, _, err := s.GetManifest(context.Background(), "bad")
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	nb, _ := encodeJSON(m)
	if _, err := s.PutManifest(context.Background(), "bad", string(types.OCIManifestSchema1), nb); err != nil {
		t.Fatal(err)
	}
}

// TestPullRefusesMore completes TestPullRefuses with the cases issue 6 lists
// that it lacks: links and special files written through or out, setgid,
// names, layer bytes that do not match their digest, foreign artifact types
// and format versions, and configs whose sizes lie. Each is refused with a
// clear error and leaves the cache directory as it was.
func TestPullRefusesMore(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	body := "hello"
	sum := sha([]byte(body))
	file := func(p string) Entry {
		return Entry{Cache: mount.GoCache, Path: p, Type: TypeFile, Mode: 0o644, Size: int64(len(body)), SHA256: sum}
	}
	dir := func(p string) Entry { return Entry{Cache: mount.GoCache, Path: p, Type: TypeDir, Mode: 0o755} }
	reg := func(name string) member {
		return member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, body: body}
	}
	setMeta := func(edit func(*v1.Manifest)) func(*testing.T, *memStore) {
		return func(t *testing.T, s *memStore) { editManifest(t, s, edit) }
	}
	cases := []struct {
		name    string
		entries []Entry
		members []member
		fix     func(*Config)
		after   func(*testing.T, *memStore)
		want    string
	}{
		{"symlink then file through it", []Entry{dir("d"), file("d/x")},
			[]member{{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "gocache/d", Linkname: "/tmp"}}, reg("gocache/d/x")}, nil, nil, "only regular files"},
		{"hard link outside", []Entry{file("x")},
			[]member{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "gocache/x", Linkname: "../../etc/passwd"}}}, nil, nil, "only regular files"},
		{"fifo", []Entry{file("x")}, []member{{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "gocache/x"}}}, nil, nil, "only regular files"},
		{"block device", []Entry{file("x")}, []member{{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "gocache/x", Devmajor: 8}}}, nil, nil, "only regular files"},
		// tar has no socket type; a socket (or any other type) in the
		// index is refused by type.
		{"socket in index", []Entry{{Cache: mount.GoCache, Path: "x", Type: "socket"}}, nil, nil, nil, `type "socket"`},
		{"setgid", []Entry{{Cache: mount.GoCache, Path: "x", Type: TypeFile, Mode: 0o2755, Size: 5, SHA256: sum}}, []member{reg("gocache/x")}, nil, nil, "setgid"},
		{"setuid member", []Entry{file("x")}, []member{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "gocache/x", Mode: 0o4755}, body: body}}, nil, nil, "setuid"},
		{"setgid dir", []Entry{{Cache: mount.GoCache, Path: "d", Type: TypeDir, Mode: 0o2755}}, nil, nil, nil, "setgid"},
		{"long component", []Entry{file(strings.Repeat("n", 256))}, nil, nil, nil, "path component over 255 bytes"},
		{"long path", []Entry{file(strings.Repeat("d/", 2049) + "x")}, nil, nil, nil, "path over 4096 bytes"},
		{"not UTF-8", []Entry{file("x\xff\xfe")}, nil, nil, nil, "not UTF-8"},
		{"file as parent", []Entry{file("f"), file("f/x")}, []member{reg("gocache/f"), reg("gocache/f/x")}, nil, nil, "no directory entry for its parent"},
		{"layer digest mismatch", []Entry{file("x")}, []member{reg("gocache/x"), reg("gocache/pad")}, nil,
			func(t *testing.T, s *memStore) {
				_, mb, _, _ := s.GetManifest(context.Background(), "bad")
				var m v1.Manifest
				json.Unmarshal(mb, &m)
				b := s.blobs[m.Layers[1].Digest]
				b[len(b)-5] ^= 0x01 // inside the zstd frame's data or checksum
			}, "corrupt or was tampered with"},
		{"unknown artifactType", []Entry{file("x")}, []member{reg("gocache/x")}, nil,
			setMeta(func(m *v1.Manifest) { m.ArtifactType = "application/vnd.example.other.v1" }), "not a melcache snapshot: artifactType"},
		{"format version", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.FormatVersion = 3 }, nil, "snapshot format version 3"},
		{"index size lies", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.Indexes[0].Size -= 10 }, nil, "decompresses to"},
		{"index size huge", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.Indexes[0].Size = 1 << 40 }, nil, "over the"},
		{"config bytes lie", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.Size = 1 }, nil, "config declares"},
		{"layer size below index", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.Layers[0].Size = 2 }, nil, "more bytes than the config declares"},
		{"layer count lies", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.Layers = append(c.Layers, c.Layers[0]) }, nil, "data layers"},
		{"negative layer size", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.Layers[0].Size = -1 }, nil, "negative size"},
		{"member size lies", []Entry{{Cache: mount.GoCache, Path: "x", Type: TypeFile, Mode: 0o644, Size: 4, SHA256: sum}}, []member{reg("gocache/x")}, nil, nil, "the index says 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemStore()
			craft(t, s, tc.entries, tc.members, tc.fix)
			if tc.after != nil {
				tc.after(t, s)
			}
			dst := newLayout(t)
			old := filepath.Join(dst.CacheDir(mount.GoCache), "keep")
			writeT(t, old, []byte("old"), 0o644)
			before := fuzzTree(t, dst.Dir)
			_, err := Pull(context.Background(), dst, s, "bad", Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if after := fuzzTree(t, dst.Dir); after != before {
				t.Fatalf("refused pull changed the cache directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestPullAcceptsCompressibleFile: the bomb check compares decompressed
// bytes with the config's declared size, not a compression ratio, so a
// legitimate zero-filled output (GOCACHE holds such files) that compresses
// over 1000× restores.
func TestPullAcceptsCompressibleFile(t *testing.T) {
	zeros := make([]byte, 8<<20)
	e := Entry{Cache: mount.GoCache, Path: "z", Type: TypeFile, Mode: 0o644, Size: int64(len(zeros)), SHA256: sha(zeros)}
	s := newMemStore()
	craft(t, s, []Entry{e}, []member{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "gocache/z", Mode: 0o644}, body: string(zeros)}}, nil)
	var ratio float64
	for _, b := range s.blobs {
		if r := float64(len(zeros)) / float64(len(b)); r > ratio {
			ratio = r
		}
	}
	if ratio < 100 {
		t.Fatalf("test layer compresses only %.0f×; it must exceed 100×", ratio)
	}
	dst := newLayout(t)
	if _, err := Pull(context.Background(), dst, s, "bad", Options{}); err != nil {
		t.Fatalf("pull of a %.0f×-compressible file: %v", ratio, err)
	}
	fi, err := os.Stat(filepath.Join(dst.CacheDir(mount.GoCache), "z"))
	if err != nil || fi.Size() != int64(len(zeros)) {
		t.Fatalf("restored file: %v, %v", fi, err)
	}
}
