package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// lazyCache is makeCache plus n GOCACHE objects of 256 KiB of random
// (incompressible) bytes, so the gocache layer spans several frames.
func lazyCache(t *testing.T, n int) mount.Layout {
	t.Helper()
	l := makeCache(t, testenv.TempDir(t))
	gc := l.CacheDir(mount.GoCache)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		out := make([]byte, 256<<10)
		for j := 0; j < len(out); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				out[j+k] = byte(v >> (8 * k))
			}
		}
		s := sha(out)
		writeT(t, filepath.Join(gc, s[:2], s+"-d"), out, 0o644)
		a := sha([]byte("big action" + strconv.Itoa(i)))
		writeT(t, filepath.Join(gc, a[:2], a+"-a"), []byte(indexLine(a, s, len(out))), 0o644)
	}
	return l
}

// gocacheLayer returns the config index of the snapshot's gocache layer.
func gocacheLayer(t *testing.T, snap *Snapshot) int {
	for i, l := range snap.Config.Layers {
		if l.Cache == mount.GoCache {
			return i
		}
	}
	t.Fatal("no gocache layer")
	return -1
}

// readEveryFile reads every gocache file through r and compares it with l's.
func readEveryFile(t *testing.T, r *FileReader, snap *Snapshot, l mount.Layout) (files int) {
	t.Helper()
	for i := range snap.Index.Entries {
		e := &snap.Index.Entries[i]
		if e.Type != TypeFile || e.Cache != mount.GoCache {
			continue
		}
		got, err := r.ReadFile(context.Background(), e)
		want, _ := os.ReadFile(filepath.Join(l.CacheDir(e.Cache), e.Path))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ReadFile %s: %d bytes, %v; want %d bytes", e.Path, len(got), err, len(want))
		}
		files++
	}
	return files
}

// TestFileReaderLayout: every gocache file of a snapshot in an OCI layout
// reads back by range, each frame fetched once; every file arrives as a
// verified neighbour, those that span frames included; a blob tampered with is refused
// with a VerifyError; a blob that is a link is not followed.
func TestFileReaderLayout(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	l := lazyCache(t, 24)
	s := NewLayoutStore(filepath.Join(testenv.TempDir(t), "layout"))
	if _, err := Push(ctx, l, s, "t", Options{}); err != nil {
		t.Fatal(err)
	}
	snap, err := FetchSnapshot(ctx, s, "t")
	if err != nil {
		t.Fatal(err)
	}
	gl := gocacheLayer(t, snap)
	if n := len(snap.Config.Layers[gl].Frames); n < 2 {
		t.Fatalf("gocache layer has %d frames; the test needs several", n)
	}
	neighbours := map[string]bool{}
	var mu sync.Mutex
	r, err := NewFileReader(s, snap, FileReaderOptions{Neighbour: func(e *Entry, b []byte) {
		if sha(b) != e.SHA256 {
			t.Errorf("neighbour %s does not match its index entry", e.Path)
		}
		mu.Lock()
		neighbours[e.Path] = true
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	n := readEveryFile(t, r, snap, l)
	r.Wait()
	if n < 40 {
		t.Fatalf("read %d files", n)
	}
	if got, frames := r.Fetches(), int64(len(snap.Config.Layers[gl].Frames)); got != frames {
		t.Errorf("%d range reads for a %d-frame layer, want one per frame", got, frames)
	}
	if len(neighbours) != n {
		t.Errorf("%d neighbours handed out for %d files: the files that span frames are handed out too", len(neighbours), n)
	}

	// Tamper with the last frame: a fresh reader refuses its files.
	blob := filepath.Join(s.Dir(), "blobs", "sha256", snap.DataLayer(gl).Digest.Hex)
	b, _ := os.ReadFile(blob)
	b[len(b)-100] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r2, _ := NewFileReader(s, snap, FileReaderOptions{Neighbour: func(e *Entry, b []byte) {
		if sha(b) != e.SHA256 {
			t.Errorf("neighbour %s of the tampered frame handed out", e.Path)
		}
	}})
	defer r2.Wait()
	var ve *VerifyError
	refused := 0
	last := int64(len(snap.Config.Layers[gl].Frames) - 1)
	for i := range snap.Index.Entries {
		e := &snap.Index.Entries[i]
		if e.Type != TypeFile || e.Layer != gl || r2.lastFrame(e) != last {
			continue
		}
		got, err := r2.ReadFile(ctx, e)
		want, _ := os.ReadFile(filepath.Join(l.CacheDir(e.Cache), e.Path))
		switch {
		case errors.As(err, &ve):
			refused++
		case err != nil || !bytes.Equal(got, want):
			t.Errorf("ReadFile %s from the tampered frame: %d bytes, %v; want its content or a VerifyError", e.Path, len(got), err)
		}
	}
	if refused == 0 {
		t.Fatal("no file of the tampered frame was refused")
	}

	// A blob replaced by a link is refused, not followed.
	os.Rename(blob, blob+".real")
	os.Symlink(blob+".real", blob)
	if _, err := s.ReadRange(ctx, snap.DataLayer(gl).Digest, 0, 10); err == nil || !strings.Contains(err.Error(), "link") {
		t.Errorf("ReadRange of a linked blob: %v", err)
	}
}

// TestFileReaderPrefetch: after one read, Prefetch fetches the layer's
// other frames, each once (the one already read is not fetched again),
// and hands out every file.
func TestFileReaderPrefetch(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	l := lazyCache(t, 24)
	s := NewLayoutStore(filepath.Join(testenv.TempDir(t), "layout"))
	if _, err := Push(ctx, l, s, "t", Options{}); err != nil {
		t.Fatal(err)
	}
	snap, err := FetchSnapshot(ctx, s, "t")
	if err != nil {
		t.Fatal(err)
	}
	gl := gocacheLayer(t, snap)
	got := map[string]bool{}
	var mu sync.Mutex
	r, _ := NewFileReader(s, snap, FileReaderOptions{Neighbour: func(e *Entry, _ []byte) {
		mu.Lock()
		got[e.Path] = true
		mu.Unlock()
	}})
	for i := range snap.Index.Entries {
		if e := &snap.Index.Entries[i]; e.Layer == gl && e.Type == TypeFile {
			if _, err := r.ReadFile(ctx, e); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if err := r.Prefetch(ctx, gl, 2); err != nil {
		t.Fatal(err)
	}
	r.Wait()
	done, total, rest := r.Fetched(gl)
	if done != total || rest != 0 || r.Fetches() != int64(total) {
		t.Errorf("after Prefetch: %d of %d frames fetched in %d requests", done, total, r.Fetches())
	}
	files := 0
	for _, e := range snap.Index.Entries {
		if e.Layer == gl && e.Type == TypeFile {
			files++
		}
	}
	if len(got) != files {
		t.Errorf("%d of %d files handed out", len(got), files)
	}
}

// TestFileReaderRegistry: against the real registry, one small file costs
// one frame: the access log shows 206 answers whose bytes are far below
// the layer's size. A registry (proxy) that ignores Range and answers 200
// gives the same bytes.
func TestFileReaderRegistry(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	l := lazyCache(t, 96)
	s := openTestRegistry(t, reg.Host, "cache/lazy", StoreOptions{})
	if _, err := Push(ctx, l, s, "t", Options{}); err != nil {
		t.Fatal(err)
	}
	snap, err := FetchSnapshot(ctx, s, "t")
	if err != nil {
		t.Fatal(err)
	}
	gl := gocacheLayer(t, snap)
	desc := snap.DataLayer(gl)
	var small *Entry
	for i := range snap.Index.Entries {
		if e := &snap.Index.Entries[i]; e.Layer == gl && strings.HasSuffix(e.Path, "-a") && e.Type == TypeFile {
			small = e
			break
		}
	}
	r, _ := NewFileReader(s, snap, FileReaderOptions{})
	got, err := r.ReadFile(ctx, small)
	want, _ := os.ReadFile(filepath.Join(l.CacheDir(mount.GoCache), small.Path))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadFile %s: %q, %v", small.Path, got, err)
	}
	var moved int64
	lines := reg.Requests(t, "GET", "/blobs/"+desc.Digest.String())
	for _, line := range lines {
		f := strings.Fields(line[strings.LastIndex(line, `HTTP/1.1"`):])
		if len(f) < 3 || f[1] != "206" {
			t.Errorf("layer GET not answered 206: %s", line)
			continue
		}
		n, _ := strconv.ParseInt(f[2], 10, 64)
		moved += n
	}
	if len(lines) != 1 || moved == 0 || moved > desc.Size/4 || moved != r.Bytes() {
		t.Errorf("%d range GETs moved %d bytes (reader counted %d) of a %d-byte layer; want one, under a quarter", len(lines), moved, r.Bytes(), desc.Size)
	}

	// A proxy that drops Range: the registry answers 200 with the whole
	// blob, which ReadRange cuts to the range.
	u, _ := url.Parse("http://" + reg.Host)
	rp := httputil.NewSingleHostReverseProxy(u)
	dir := rp.Director
	rp.Director = func(req *http.Request) { dir(req); req.Header.Del("Range") }
	proxy := httptest.NewServer(rp)
	defer proxy.Close()
	ps := openTestRegistry(t, strings.TrimPrefix(proxy.URL, "http://"), "cache/lazy", StoreOptions{})
	full, err := ps.ReadBlob(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(full)
	full.Close()
	off, n := desc.Size/2, int64(5000)
	for _, st := range []RangeReader{s, ps} {
		rc, err := st.ReadRange(ctx, desc.Digest, off, n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(b, all[off:off+n]) {
			t.Errorf("ReadRange through %T: %d bytes, %v", st, len(b), err)
		}
	}
	// Past the end: an error, not a short read taken for the file.
	rc, err := s.ReadRange(ctx, desc.Digest, desc.Size-10, 20)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil {
		t.Error("ReadRange past the blob's end succeeded")
	}
}

// ReadRange makes the test store a RangeReader.
func (m *memStore) ReadRange(ctx context.Context, d v1.Hash, off, n int64) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if off > int64(len(b)) {
		return nil, fmt.Errorf("blob %s: range past its end", d)
	}
	return io.NopCloser(bytes.NewReader(b[off:min(int64(len(b)), off+n)])), nil
}

// TestFileReaderHostileIndex: a snapshot whose index names a path outside
// its cache is refused before any file is read (so `cacheprog REF` fails
// before serving); an index entry placed on another file's bytes reads as
// a VerifyError, never as that file's content.
func TestFileReaderHostileIndex(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	craft(t, s, []Entry{{Cache: mount.GoCache, Path: "../evil", Type: TypeFile, Mode: 0o644, Size: 5, SHA256: sha([]byte("hello"))}},
		[]member{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "gocache/../evil", Mode: 0o644}, body: "hello"}}, nil)
	if _, err := FetchSnapshot(ctx, s, "bad"); err == nil || !strings.Contains(err.Error(), `".."`) {
		t.Errorf("snapshot naming ../evil: %v", err)
	}

	s = newMemStore()
	// Entry x claims member y's place: craft gives an entry with no
	// member of its name the first content block, which is y's.
	craft(t, s, []Entry{
		{Cache: mount.GoCache, Path: "x", Type: TypeFile, Mode: 0o644, Size: 5, SHA256: sha([]byte("hello"))},
		{Cache: mount.GoCache, Path: "y", Type: TypeFile, Mode: 0o644, Size: 5, SHA256: sha([]byte("HELLO"))}},
		[]member{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "gocache/y", Mode: 0o644}, body: "HELLO"}}, nil)
	snap, err := FetchSnapshot(ctx, s, "bad")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewFileReader(s, snap, FileReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := r.Lookup(mount.GoCache, "x")
	y, _ := r.Lookup(mount.GoCache, "y")
	var ve *VerifyError
	if b, err := r.ReadFile(ctx, x); !errors.As(err, &ve) {
		t.Errorf("x on y's bytes: %q, %v; want a VerifyError", b, err)
	}
	if b, err := r.ReadFile(ctx, y); err != nil || string(b) != "HELLO" {
		t.Errorf("y: %q, %v", b, err)
	}
	if _, ok := r.Lookup(mount.GoModCache, "y"); ok {
		t.Error("Lookup found a gocache file in gomodcache")
	}
}
