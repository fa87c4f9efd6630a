package oci

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// memStore is an in-memory Store for fast unit tests of the snapshot logic;
// the integration tests use the real registry and layout stores.
type memStore struct {
	mu        sync.Mutex
	blobs     map[v1.Hash][]byte
	manifests map[v1.Hash][]byte
	types     map[v1.Hash]string
	tags      map[string]v1.Hash
	writes    int // blobs actually written
	reads     map[v1.Hash]int
	// cutAfter, when > 0, cuts the next ReadBlob of cutBlob at that many
	// bytes.
	cutAfter int64
	cutBlob  v1.Hash
}

func newMemStore() *memStore {
	return &memStore{blobs: map[v1.Hash][]byte{}, manifests: map[v1.Hash][]byte{},
		types: map[v1.Hash]string{}, tags: map[string]v1.Hash{}, reads: map[v1.Hash]int{}}
}

func (m *memStore) String() string { return "mem" }

func (m *memStore) HasBlob(ctx context.Context, d v1.Hash) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blobs[d]
	return ok, nil
}

func (m *memStore) WriteBlob(ctx context.Context, d v1.Hash, size int64, open func() (io.ReadCloser, error)) (bool, error) {
	if ok, _ := m.HasBlob(ctx, d); ok {
		return true, nil
	}
	rc, err := open()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return false, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(b))
	if h != d || n != size {
		return false, fmt.Errorf("blob %s: got %s (%d bytes)", d, h, n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[d] = b
	m.writes++
	return false, nil
}

type cutReader struct {
	r io.Reader
	n int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, fmt.Errorf("read tcp: %w", syscall.ECONNRESET) // as a real reset reads
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

func (m *memStore) ReadBlob(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	m.reads[d]++
	var r io.Reader = bytes.NewReader(b)
	if m.cutAfter > 0 && d == m.cutBlob && int64(len(b)) > m.cutAfter {
		r = &cutReader{r: r, n: m.cutAfter}
		m.cutAfter = 0
	}
	return io.NopCloser(r), nil
}

func (m *memStore) PutManifest(ctx context.Context, tag, mt string, b []byte) (v1.Hash, error) {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.manifests[h] = append([]byte(nil), b...)
	m.types[h] = mt
	if tag != "" {
		m.tags[tag] = h
	}
	return h, nil
}

func (m *memStore) GetManifest(ctx context.Context, ref string) (string, []byte, v1.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var h v1.Hash
	if strings.HasPrefix(ref, "sha256:") {
		var err error
		if h, err = v1.NewHash(ref); err != nil {
			return "", nil, h, err
		}
	} else {
		var ok bool
		if h, ok = m.tags[ref]; !ok {
			return "", nil, h, fmt.Errorf("manifest %s: %w", ref, ErrNotFound)
		}
	}
	b, ok := m.manifests[h]
	if !ok {
		return "", nil, h, fmt.Errorf("manifest %s: %w", ref, ErrNotFound)
	}
	return m.types[h], b, h, nil
}

func (m *memStore) Tags(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ts []string
	for t := range m.tags {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts, nil
}

func (m *memStore) DeleteManifest(ctx context.Context, d v1.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.manifests, d)
	for t, h := range m.tags {
		if h == d {
			delete(m.tags, t)
		}
	}
	return nil
}

type ioReadCloser = io.ReadCloser

type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }
