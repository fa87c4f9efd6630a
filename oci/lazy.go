package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/melcache/melcache/mount"
)

// ErrNoPositions says a snapshot (format 1) or a store cannot serve one
// file by range: the caller pulls the snapshot whole instead.
var ErrNoPositions = errors.New("snapshot records no file positions (format 1) or its store cannot read ranges")

// frameCacheBytes bounds the decompressed frames a FileReader keeps: a file
// that spans frames, and the -a and -d entries of one action that share a
// frame, reuse a frame instead of fetching it again. Neighbours are handed
// to FileReaderOptions.Neighbour when their frame arrives, so the cache
// only has to bridge requests in flight at once (64 gets × a few frames).
const frameCacheBytes = 64 << 20

// FileReader reads single files of a version 2 snapshot by range
// (docs/format.md, "Reading one file"): only the zstd frames holding the
// file are fetched, decompressed and sliced, and every file is checked
// against the index's size and SHA-256 (a GOCACHE -d file's name is its
// SHA-256, which the index check enforces). Concurrent reads of one frame
// share one fetch. It is safe for concurrent use.
type FileReader struct {
	rr    RangeReader
	store Store
	snap  *Snapshot
	o     FileReaderOptions
	files map[string]*Entry // by Entry.key()
	// starts[i][f] is where frame f of layer i starts in its blob.
	starts [][]int64
	// inFrame[frameKey] are the files wholly inside that frame; spans
	// the files that lie partly in it and partly in others.
	inFrame map[frameKey][]*Entry
	spans   map[frameKey][]*Entry

	mu       sync.Mutex
	cache    map[frameKey][]byte
	order    []frameKey // cache keys, oldest first
	cached   int64
	inflight map[frameKey]*frameCall
	seen     map[frameKey]bool // frames whose neighbours were handed out
	// pieces hold the parts of files that span frames, by frame, until
	// every part has arrived (Neighbour) or a read takes them.
	pieces     map[*Entry]map[int64][]byte
	pieceBytes int64

	fetches, bytes atomic.Int64
	fetchNanos     atomic.Int64   // time spent in frame fetches
	wg             sync.WaitGroup // Neighbour hand-outs in flight
}

type frameKey struct {
	layer int
	frame int64
}

type frameCall struct {
	done chan struct{}
	data []byte
	err  error
}

// FileReaderOptions configure NewFileReader.
type FileReaderOptions struct {
	// Neighbour, when set, receives every file of a frame the reader
	// fetched (those that span frames once all their frames arrived),
	// verified, once, from a goroutine of its own (Wait waits for them):
	// a lazy client keeps them so that a later request needs no fetch.
	Neighbour func(e *Entry, content []byte)
}

// NewFileReader returns a reader of single files of snap, a snapshot of s
// fetched and verified by FetchSnapshot. It fails with ErrNoPositions when
// the snapshot is version 1 or s cannot read ranges.
func NewFileReader(s Store, snap *Snapshot, o FileReaderOptions) (*FileReader, error) {
	rr, ok := s.(RangeReader)
	if !ok || snap.Config.FormatVersion < 2 {
		return nil, ErrNoPositions
	}
	r := &FileReader{rr: rr, store: s, snap: snap, o: o, files: map[string]*Entry{},
		inFrame: map[frameKey][]*Entry{}, cache: map[frameKey][]byte{},
		inflight: map[frameKey]*frameCall{}, seen: map[frameKey]bool{},
		spans: map[frameKey][]*Entry{}, pieces: map[*Entry]map[int64][]byte{}}
	for _, l := range snap.Config.Layers {
		st := make([]int64, len(l.Frames)+1)
		for i, n := range l.Frames {
			st[i+1] = st[i] + n
		}
		r.starts = append(r.starts, st)
	}
	for i := range snap.Index.Entries {
		e := &snap.Index.Entries[i]
		if e.Type != TypeFile {
			continue
		}
		r.files[e.key()] = e
		if last := r.lastFrame(e); last == e.Frame {
			k := frameKey{e.Layer, e.Frame}
			r.inFrame[k] = append(r.inFrame[k], e)
		} else {
			for f := e.Frame; f <= last; f++ {
				k := frameKey{e.Layer, f}
				r.spans[k] = append(r.spans[k], e)
			}
		}
	}
	return r, nil
}

// Lookup returns the index entry of a regular file of cache c.
func (r *FileReader) Lookup(c mount.Cache, p string) (*Entry, bool) {
	e, ok := r.files[string(c)+"\x00"+p]
	return e, ok
}

// Fetches and Bytes count the range requests made and the compressed
// bytes they returned.
func (r *FileReader) Fetches() int64 { return r.fetches.Load() }
func (r *FileReader) Bytes() int64   { return r.bytes.Load() }

func (r *FileReader) lastFrame(e *Entry) int64 {
	if e.Size == 0 {
		return e.Frame
	}
	return (e.Offset + e.Size - 1) / r.snap.Config.Layers[e.Layer].FrameSize
}

// ReadFile returns the content of e (an entry of the reader's snapshot),
// fetching the frames [offset/frameSize, (offset+size-1)/frameSize] it
// lies in, in parallel. Content that does not match the index is a
// *VerifyError.
func (r *FileReader) ReadFile(ctx context.Context, e *Entry) ([]byte, error) {
	first, last := e.Frame, r.lastFrame(e)
	parts := make([][]byte, last-first+1)
	g, gctx := errgroup.WithContext(ctx)
	for f := first; f <= last; f++ {
		g.Go(func() error {
			r.mu.Lock()
			p, ok := r.pieces[e][f]
			r.mu.Unlock()
			if ok {
				parts[f-first] = p
				return nil
			}
			data, err := r.frame(gctx, frameKey{e.Layer, f})
			if err == nil {
				if parts[f-first], ok = r.piece(e, f, data); !ok {
					err = verifyErrorf("%s: %s/%s lies past its frame", r.store, e.Cache, e.Path)
				}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, e.Size)
	for _, p := range parts {
		out = append(out, p...)
	}
	if err := r.check(e, out); err != nil {
		return nil, err
	}
	return out, nil
}

// piece is the part of file e inside frame f, given the frame's bytes.
func (r *FileReader) piece(e *Entry, f int64, data []byte) ([]byte, bool) {
	fs := r.snap.Config.Layers[e.Layer].FrameSize
	start := max(e.Offset, f*fs) - f*fs
	end := min(e.Offset+e.Size, (f+1)*fs) - f*fs
	if start > end || end > int64(len(data)) {
		return nil, false
	}
	return data[start:end], true
}

// check verifies content against e's size and SHA-256.
func (r *FileReader) check(e *Entry, content []byte) error {
	sum := sha256.Sum256(content)
	if int64(len(content)) != e.Size || hex.EncodeToString(sum[:]) != e.SHA256 {
		return verifyErrorf("%s: layer %s: %s/%s does not match the index (%d bytes, sha256 %x)",
			r.store, r.snap.DataLayer(e.Layer).Digest, e.Cache, e.Path, len(content), sum)
	}
	return nil
}
