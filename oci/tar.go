package oci

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/melcache/melcache/mount"
)

// tarEpoch is the fixed mtime of every tar member: restore sets its own
// mtimes (docs/format.md, "Restore" step 7), so a constant keeps layers
// reproducible.
var tarEpoch = time.Unix(0, 0)

// zstdLevel is klauspost's fastest level (~ zstd -1). Measured on a 341 MB
// Go cache (oras + crane): 22% less CPU than SpeedDefault (~ zstd -3) for
// output 5% larger (148 vs 142 MB; the module zips do not compress at all).
// Push is CPU-bound on a 2-core builder, where the CPU matters more than 5%
// more bytes to a registry on the LAN.
const zstdLevel = zstd.SpeedFastest

// zstdDecoderMaxWindow bounds decoder memory (the encoder uses at most an
// 8 MiB window at zstdLevel); a hostile stream asking for more is refused.
const zstdDecoderMaxWindow = 64 << 20

// writeBufSize is the buffer between the compressor and the temp file.
const writeBufSize = 1 << 20

func newDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderMaxWindow(zstdDecoderMaxWindow), zstd.WithDecoderConcurrency(1))
}

// countWriter counts bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// packedLayer is a data layer compressed into a temporary file.
type packedLayer struct {
	info LayerInfo
	// file is the temporary file holding the compressed blob.
	file string
	// compressed is the blob's size.
	compressed int64
	// writing counts GOCACHE -d files found still being written while
	// packing: their bytes are in the tar, but their entries (SHA256
	// cleared) are dropped from the index, which is the authority.
	writing int
}

// packLayer writes the files es (in packOrder, all of cache c, from layout l) as a
// reproducible tar + zstd layer into a new temporary file in tmpDir, hashing
// the compressed stream as it is written: each layer is written once and
// never held in memory. It sets each entry's Offset and Frame, and the
// layer's frame table, from the counts it keeps anyway (no extra pass). A
// file whose content changed since it was hashed is packed as read now, and
// its entry's SHA256 updated to match; a file that shrank fails the push (a
// build is rewriting the cache).
func packLayer(ctx context.Context, l mount.Layout, c mount.Cache, es []*Entry, tmpDir string, jobs int) (_ *packedLayer, err error) {
	f, err := os.CreateTemp(tmpDir, "layer-*.tar.zst")
	if err != nil {
		return nil, err
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	dh := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, dh), writeBufSize)
	cw := &countWriter{w: bw}
	zw := newPzstdWriter(cw, jobs)
	tc := &countWriter{w: zw}
	tw := tar.NewWriter(tc)
	buf := hashBufPool.Get().(*[]byte)
	defer hashBufPool.Put(buf)
	fh := sha256.New()
	writing := 0
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := packFile(tw, l, e, *buf, fh); err != nil {
			return nil, err
		}
		// The tar writer pads a member only when the next header or
		// Close comes, so the content just written ends at tc.n.
		e.Offset = tc.n - e.Size
		e.Frame = e.Offset / pzstdChunk
		if e.SHA256 == "" {
			writing++
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &packedLayer{
		info: LayerInfo{Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(dh.Sum(nil))},
			Cache: c, Files: len(es), Size: tc.n, FrameSize: pzstdChunk, Frames: zw.frames},
		file:       f.Name(),
		compressed: cw.n,
		writing:    writing,
	}, nil
}

// packFile writes e's file into tw. It hashes every byte it packs, always:
// the index records what the layer holds whatever the scan or the stat
// cache said (docs/format.md, "Stat cache"). A GOCACHE action entry's time
// field is recorded as packed (Entry.GoTime).
func packFile(tw *tar.Writer, l mount.Layout, e *Entry, buf []byte, h hash.Hash) error {
	p := filepath.Join(cacheRoot(l, e.Cache), filepath.FromSlash(e.Path))
	src, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("pack %s: %w (a build changed the cache during the push; push again)", p, err)
	}
	defer src.Close()
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     e.TarName(),
		Mode:     int64(e.Mode),
		Size:     e.Size,
		ModTime:  tarEpoch,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("pack %s: %w", p, err)
	}
	h.Reset()
	kind, id := kindOf(e)
	var w io.Writer = h
	var head *headWriter
	if kind == kindAction {
		head = &headWriter{max: headSize}
		w = io.MultiWriter(h, head)
	}
	n, err := io.CopyBuffer(tw, io.TeeReader(io.LimitReader(src, e.Size), w), buf)
	if err != nil {
		return fmt.Errorf("pack %s: %w", p, err)
	}
	if n != e.Size {
		return fmt.Errorf("pack %s: file shrank from %d to %d bytes while pushing (a build is writing the cache; push again)", p, e.Size, n)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if id, ok := goCacheDataID(e.Path); ok && e.Cache == mount.GoCache && id != sum {
		e.SHA256 = "" // still being written: dropped from the index
		return nil
	}
	e.SHA256, e.GoTime = sum, 0
	if head != nil {
		if a, err := mount.ParseActionEntry(head.b, id); err == nil {
			e.GoTime = a.Time.UnixNano()
		}
	}
	return nil
}

// compressBytes zstd-compresses a small metadata document.
func compressBytes(b []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return enc.EncodeAll(b, nil), nil
}
