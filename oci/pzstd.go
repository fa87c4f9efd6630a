package oci

import (
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// pzstdChunk is the input size of each independently compressed zstd frame.
// A single zstd stream compresses on about one core; cutting the tar stream
// into fixed 4 MiB chunks compressed in parallel (as pzstd and zstd -T0 do)
// uses every core, and the frame boundaries depend only on byte offsets, so
// the output stays reproducible. The ratio loss against one stream is
// ~1% on Go caches; any zstd decoder reads the concatenated frames as one
// stream.
const pzstdChunk = 4 << 20

// pzstdWriter compresses what is written to it as a sequence of zstd frames
// of pzstdChunk input bytes each, compressed by parallel workers and
// written to w in order. It keeps its own workers rather than an errgroup:
// each holds a pooled encoder for the writer's life, and the order channel
// both bounds the chunks in flight and writes frames in input order, which
// a set of independent tasks does not give.
type pzstdWriter struct {
	w       io.Writer
	buf     []byte
	jobs    chan *pzJob
	order   chan *pzJob
	done    chan struct{}
	mu      sync.Mutex
	err     error
	pool    sync.Pool // input chunks
	outPool sync.Pool // compressed frames
	wrote   bool
	// frames are the compressed lengths of the frames written, in order
	// (appended by the writing goroutine; read after Close).
	frames []int64
}

type pzJob struct {
	in, out []byte
	ready   chan struct{}
}

var pzEncoders = sync.Pool{New: func() any {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(1),
		// The layer digest covers every byte; a per-frame xxhash adds
		// nothing but CPU.
		zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only on invalid options
	}
	return e
}}

func newPzstdWriter(w io.Writer, workers int) *pzstdWriter {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// At most workers+1 chunks are in flight (queued or compressing) plus
	// the one filling: memory stays ~2*(workers+2)*pzstdChunk.
	z := &pzstdWriter{w: w, jobs: make(chan *pzJob), order: make(chan *pzJob, 1), done: make(chan struct{})}
	z.pool.New = func() any { return make([]byte, 0, pzstdChunk) }
	z.buf = z.pool.Get().([]byte)
	for range workers {
		go func() {
			enc := pzEncoders.Get().(*zstd.Encoder)
			defer pzEncoders.Put(enc)
			for j := range z.jobs {
				// Room for the whole frame up front: EncodeAll appends
				// block by block, and growing a 4 MiB frame by doubling
				// copies was 16% of a full push's CPU (profiled).
				if m := enc.MaxEncodedSize(len(j.in)); cap(j.out) < m {
					j.out = make([]byte, 0, m)
				}
				j.out = enc.EncodeAll(j.in, j.out[:0])
				close(j.ready)
			}
		}()
	}
	go func() {
		defer close(z.done)
		for j := range z.order {
			<-j.ready
			if z.error() == nil {
				if _, err := z.w.Write(j.out); err != nil {
					z.setError(err)
				}
				z.frames = append(z.frames, int64(len(j.out)))
			}
			z.pool.Put(j.in[:0])
			z.outPool.Put(j.out[:0])
		}
	}()
	return z
}

func (z *pzstdWriter) error() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

func (z *pzstdWriter) setError(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.err == nil {
		z.err = err
	}
}

func (z *pzstdWriter) submit() {
	j := &pzJob{in: z.buf, ready: make(chan struct{})}
	if b, ok := z.outPool.Get().([]byte); ok {
		j.out = b
	}
	z.order <- j // blocks when `workers` chunks are in flight: bounded memory
	z.jobs <- j
	z.buf = z.pool.Get().([]byte)
	z.wrote = true
}

// Write buffers p, submitting each full chunk for compression.
func (z *pzstdWriter) Write(p []byte) (int, error) {
	if err := z.error(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), pzstdChunk-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		if len(z.buf) == pzstdChunk {
			z.submit()
		}
	}
	return n, nil
}

// Close compresses the last chunk and waits for every frame to be written.
func (z *pzstdWriter) Close() error {
	if len(z.buf) > 0 || !z.wrote {
		z.submit()
	}
	close(z.order)
	close(z.jobs)
	<-z.done
	return z.error()
}
