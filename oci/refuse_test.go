package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

type member struct {
	hdr  tar.Header
	body string
}

// craft stores a hand-made snapshot: entries and tar members as given, the
// config derived from them unless fix edits it. File entries get
// generation 1 and the content offset of the member of their name (the
// first block after the headers when there is none).
func craft(t *testing.T, s *memStore, entries []Entry, members []member, fix func(*Config)) {
	t.Helper()
	ctx := context.Background()
	var tb bytes.Buffer
	cw := &countWriter{w: &tb}
	tw := tar.NewWriter(cw)
	offsets := map[string]int64{}
	for _, m := range members {
		h := m.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(m.body))
		if _, dup := offsets[h.Name]; !dup {
			offsets[h.Name] = cw.n - int64(len(m.body))
		}
	}
	tw.Close()
	lz, frames := pzstdBytes(tb.Bytes())
	ld := blobDescriptor(LayerMediaType, lz)
	s.WriteBlob(ctx, ld.Digest, ld.Size, openBytes(lz))
	entries = append([]Entry(nil), entries...)
	for i := range entries {
		if e := &entries[i]; e.Type == TypeFile {
			e.Gen, e.Offset = 1, tarBlock
			if off, ok := offsets[e.TarName()]; ok {
				e.Offset = off
			}
			e.Frame = e.Offset / pzstdChunk
		}
	}
	ib, _ := encodeIndexDoc(entries, nil)
	iz, _ := compressBytes(ib)
	id := blobDescriptor(IndexMediaType, iz)
	s.WriteBlob(ctx, id.Digest, id.Size, openBytes(iz))
	c := &Config{FormatVersion: FormatVersion, Arch: HostArch(), Caches: []mount.Cache{mount.GoModCache, mount.GoCache},
		Indexes: []IndexRef{{Digest: id.Digest, Size: int64(len(ib)), Entries: len(entries)}},
		Layers: []LayerInfo{{Digest: ld.Digest, Cache: mount.GoCache, Generation: 1, Files: len(members), Size: int64(tb.Len()),
			FrameSize: pzstdChunk, Frames: frames}}}
	for _, e := range entries {
		if e.Type == TypeFile {
			c.Files++
			c.Size += e.Size
		}
	}
	if fix != nil {
		fix(c)
	}
	cb, _ := encodeJSON(c)
	cd := blobDescriptor(ConfigMediaType, cb)
	s.WriteBlob(ctx, cd.Digest, cd.Size, openBytes(cb))
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactType,
		Config: cd, Layers: []v1.Descriptor{id, ld}}
	mb, _ := encodeJSON(m)
	if _, err := s.PutManifest(ctx, "bad", string(types.OCIManifestSchema1), mb); err != nil {
		t.Fatal(err)
	}
}

// pzstdBytes compresses b as packLayer does, returning the frame table.
func pzstdBytes(b []byte) ([]byte, []int64) {
	var out bytes.Buffer
	z := newPzstdWriter(&out, 1)
	z.Write(b)
	z.Close()
	return out.Bytes(), z.frames
}

func openBytes(b []byte) func() (ioReadCloser, error) {
	return func() (ioReadCloser, error) { return nopCloser{bytes.NewReader(b)}, nil }
}

func TestPullRefuses(t *testing.T) {
	body := "hello"
	sum := sha([]byte(body))
	file := func(p string) Entry {
		return Entry{Cache: mount.GoCache, Path: p, Type: TypeFile, Mode: 0o644, Size: int64(len(body)), SHA256: sum}
	}
	reg := func(name string) member {
		return member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, body: body}
	}
	cases := []struct {
		name    string
		entries []Entry
		members []member
		fix     func(*Config)
		want    string
	}{
		{"dotdot", []Entry{file("../evil")}, []member{reg("gocache/../evil")}, nil, `path component ".."`},
		{"absolute", []Entry{file("/etc/passwd")}, nil, nil, "absolute path"},
		// JSON cannot carry invalid UTF-8 (the index is always valid); tar
		// member names can.
		{"not utf-8", []Entry{file("x")}, []member{reg("gocache/a\xffb"), reg("gocache/x")}, nil, "not UTF-8"},
		{"long name", []Entry{file(strings.Repeat("n", 256))}, nil, nil, "component over 255 bytes"},
		{"long path", []Entry{file(strings.Repeat("d/", 2100) + "f")}, nil, nil, "path over 4096 bytes"},
		{"no dir entry", []Entry{file("sub/x")}, []member{reg("gocache/sub/x")}, nil, "no directory entry for its parent"},
		{"setuid", []Entry{{Cache: mount.GoCache, Path: "x", Type: TypeFile, Mode: 0o4755, Size: 5, SHA256: sum}}, []member{reg("gocache/x")}, nil, "setuid"},
		{"symlink type", []Entry{{Cache: mount.GoCache, Path: "x", Type: "symlink"}}, nil, nil, `type "symlink"`},
		{"duplicate", []Entry{file("x"), file("x")}, []member{reg("gocache/x")}, nil, "duplicate entry"},
		{"d name", []Entry{{Cache: mount.GoCache, Path: "00", Type: TypeDir, Mode: 0o755}, file("00/" + strings.Repeat("0", 64) + "-d")}, nil, nil, "is not its name"},
		{"link member", []Entry{file("x")}, []member{{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "gocache/x", Linkname: "/etc/passwd"}}}, nil, "only regular files"},
		{"device member", []Entry{file("x")}, []member{{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "gocache/x", Devmajor: 1, Devminor: 3}}}, nil, "only regular files"},
		{"content", []Entry{{Cache: mount.GoCache, Path: "x", Type: TypeFile, Mode: 0o644, Size: 5, SHA256: sha([]byte("other"))}}, []member{reg("gocache/x")}, nil, "content sha256"},
		{"oversize", []Entry{file("x")}, []member{reg("gocache/x"), reg("gocache/y")}, func(c *Config) { c.Layers[0].Size = 1536 }, "more bytes than the config declares"},
		{"dup member", []Entry{file("x"), file("y")}, []member{reg("gocache/x"), reg("gocache/x"), reg("gocache/y")}, nil, "duplicate member"},
		{"config count", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.Files = 0 }, "config declares"},
		// A push makes MaxGeneration()+1: a huge generation must not wrap
		// onto a kept layer's.
		{"generation", []Entry{file("x")}, []member{reg("gocache/x")}, func(c *Config) { c.Layers[0].Generation = 1 << 62 }, "out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemStore()
			craft(t, s, tc.entries, tc.members, tc.fix)
			dst := newLayout(t)
			old := filepath.Join(dst.CacheDir(mount.GoCache), "keep")
			writeT(t, old, []byte("old"), 0o644)
			_, err := Pull(context.Background(), dst, s, "bad", Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			// Nothing changed, nothing left behind.
			ents, _ := os.ReadDir(dst.CacheDir(mount.GoCache))
			if len(ents) != 1 || ents[0].Name() != "keep" {
				t.Fatalf("cache changed: %v", ents)
			}
			if _, err := os.Stat(stagingDir(dst)); !os.IsNotExist(err) {
				t.Fatal("staging left behind")
			}
			if _, err := os.Stat(journalPath(dst)); !os.IsNotExist(err) {
				t.Fatal("journal left behind")
			}
		})
	}
}

// TestPullRefusesTamperedModules: a module zip or extracted tree that does
// not match its .ziphash is refused (Go does not re-hash either on use).
func TestPullRefusesTamperedModules(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"tree", "example.com/m@v1.0.0/a.go", "module tree example.com/m@v1.0.0"},
		{"zip", "cache/download/example.com/m/@v/v1.0.0.zip", "module zip cache/download/example.com/m/@v/v1.0.0.zip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			src := makeCache(t, testenv.TempDir(t))
			p := filepath.Join(src.CacheDir(mount.GoModCache), tc.file)
			os.Chmod(filepath.Dir(p), 0o755)
			writeT(t, p, []byte("package m\n\nconst X = 2 // tampered\n"), 0o444)
			s := newMemStore()
			if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
				t.Fatal(err)
			}
			dst := newLayout(t)
			_, err := Pull(ctx, dst, s, "k", Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(dst.CacheDir(mount.GoModCache)); !os.IsNotExist(err) {
				t.Fatalf("refused pull left a module cache: %v", err)
			}
		})
	}
}
