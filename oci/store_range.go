package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/melcache/melcache/internal/fsutil"
)

// RangeReader is a Store that can read part of a blob: what a lazy reader
// of one snapshot file needs (docs/format.md, "Reading one file"). The
// registry store, OCI layouts and the embedded store implement it.
type RangeReader interface {
	// ReadRange opens n bytes of blob d from offset off. The reader ends
	// with io.ErrUnexpectedEOF when the blob is shorter. The caller
	// verifies what it reads (a range cannot be checked against the
	// blob's digest).
	ReadRange(ctx context.Context, d v1.Hash, off, n int64) (io.ReadCloser, error)
}

// checkRange refuses a negative or overflowing range.
func checkRange(d v1.Hash, off, n int64) error {
	if off < 0 || n <= 0 || off > (1<<62)-n {
		return fmt.Errorf("blob %s: invalid range of %d bytes at %d", d, n, off)
	}
	return nil
}

// ReadRange GETs bytes [off, off+n) of the blob with a Range request, with
// the same transport, credentials, timeouts, resumption and error
// translation as ReadBlob. A registry that ignores Range (answers 200 with
// the whole blob) is read and discarded up to off, and the answer is cut
// at off+n: correct, only slower.
func (s *RegistryStore) ReadRange(ctx context.Context, d v1.Hash, off, n int64) (io.ReadCloser, error) {
	if err := checkRange(d, off, n); err != nil {
		return nil, err
	}
	rt, err := s.authTransport(ctx, false)
	if err != nil {
		return nil, s.fail("pulling blob from", err)
	}
	r := &resumingReader{ctx: ctx, s: s, d: d, client: &http.Client{Transport: rt}, off: off, end: off + n, total: -1}
	if err := r.open(); err != nil {
		return nil, s.fail("pulling blob from", fmt.Errorf("blob %s bytes %d-%d: %w", d, off, off+n-1, err))
	}
	return r, nil
}

// ReadRange reads bytes [off, off+n) of blobs/sha256/<hex> with ReadAt,
// opening the blob without following a link (a layout may be shared; its
// blobs are regular files).
func (s *LayoutStore) ReadRange(ctx context.Context, d v1.Hash, off, n int64) (io.ReadCloser, error) {
	if err := checkHash(d); err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	if err := checkRange(d, off, n); err != nil {
		return nil, err
	}
	root, err := fsutil.OpenRootNoFollow(filepath.Join(s.dir, layoutBlobsDir, d.Algorithm))
	if err != nil {
		return nil, s.rangeErr(d, err)
	}
	defer root.Close()
	f, err := fsutil.OpenFileNoFollow(root, d.Hex, os.O_RDONLY, 0)
	if err != nil {
		return nil, s.rangeErr(d, err)
	}
	return &sectionCloser{SectionReader: io.NewSectionReader(ctxReaderAt{ctx, f}, off, n), f: f, want: n}, nil
}

func (s *LayoutStore) rangeErr(d v1.Hash, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s in %s: %w", d, s, ErrNotFound)
	}
	return fmt.Errorf("%s: blob %s: %w", s, d, err)
}

// sectionCloser is a range of an open blob file; a blob shorter than the
// range ends in io.ErrUnexpectedEOF, as the registry's does.
type sectionCloser struct {
	*io.SectionReader
	f    *os.File
	want int64
	got  int64
}

func (r *sectionCloser) Read(p []byte) (int, error) {
	n, err := r.SectionReader.Read(p)
	r.got += int64(n)
	if err == io.EOF && r.got < r.want {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *sectionCloser) Close() error { return r.f.Close() }

// ctxReaderAt stops a read when the context is cancelled.
type ctxReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (c ctxReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.ReadAt(p, off)
}
