package oci

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/errgroup"
)

// frame returns frame k decompressed: from the cache, from a fetch already
// in flight, or fetched now. The first fetch of a frame hands its files to
// the Neighbour hook.
func (r *FileReader) frame(ctx context.Context, k frameKey) ([]byte, error) {
	r.mu.Lock()
	if b, ok := r.cache[k]; ok {
		r.mu.Unlock()
		return b, nil
	}
	if c, ok := r.inflight[k]; ok {
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.data, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &frameCall{done: make(chan struct{})}
	r.inflight[k] = c
	r.mu.Unlock()

	c.data, c.err = r.fetchFrame(ctx, k)
	r.mu.Lock()
	delete(r.inflight, k)
	first := c.err == nil && !r.seen[k]
	if c.err == nil {
		r.seen[k] = true
		r.remember(k, c.data)
	}
	r.mu.Unlock()
	close(c.done)
	if first && r.o.Neighbour != nil {
		// Off the caller's path: the read that fetched the frame
		// answers now, and a read of a neighbour not handed out yet
		// finds the frame cached.
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.neighbours(k, c.data)
			r.spanning(k, c.data)
		}()
	}
	return c.data, c.err
}

// Wait waits until the files of every frame fetched so far have been
// handed to the Neighbour hook.
func (r *FileReader) Wait() { r.wg.Wait() }

// maxPieceBytes bounds the parts of spanning files kept while their other
// frames have not arrived: past it a part is dropped, and reading that
// file may fetch its frame again.
const maxPieceBytes = 256 << 20

// spanning keeps the parts in frame k of the files that span frames (a
// copy: a part must not keep its whole frame alive) and hands each file
// whose every part has arrived to the Neighbour hook, verified, so that a
// file larger than a frame costs no frame twice either.
func (r *FileReader) spanning(k frameKey, data []byte) {
	var done []*Entry
	r.mu.Lock()
	for _, e := range r.spans[k] {
		p, ok := r.piece(e, k.frame, data)
		if !ok || r.pieceBytes+int64(len(p)) > maxPieceBytes {
			continue
		}
		if r.pieces[e] == nil {
			r.pieces[e] = map[int64][]byte{}
		}
		if _, dup := r.pieces[e][k.frame]; !dup {
			r.pieces[e][k.frame] = bytes.Clone(p)
			r.pieceBytes += int64(len(p))
		}
		if int64(len(r.pieces[e])) == r.lastFrame(e)-e.Frame+1 {
			done = append(done, e)
		}
	}
	whole := make([][]byte, len(done))
	for i, e := range done {
		for f := e.Frame; f <= r.lastFrame(e); f++ {
			whole[i] = append(whole[i], r.pieces[e][f]...)
		}
		r.pieceBytes -= int64(len(whole[i]))
		delete(r.pieces, e)
	}
	r.mu.Unlock()
	for i, e := range done {
		if r.check(e, whole[i]) == nil {
			r.o.Neighbour(e, whole[i])
		}
	}
}

// remember caches a frame, dropping the oldest past frameCacheBytes.
// r.mu is held.
func (r *FileReader) remember(k frameKey, b []byte) {
	r.cache[k] = b
	r.order = append(r.order, k)
	r.cached += int64(len(b))
	for r.cached > frameCacheBytes && len(r.order) > 1 {
		old := r.order[0]
		r.order = r.order[1:]
		r.cached -= int64(len(r.cache[old]))
		delete(r.cache, old)
	}
}

// neighbours hands the verified files wholly inside frame k to the hook;
// a file that does not match the index is skipped (a later ReadFile of it
// fails with the VerifyError).
func (r *FileReader) neighbours(k frameKey, data []byte) {
	fs := r.snap.Config.Layers[k.layer].FrameSize
	for _, e := range r.inFrame[k] {
		at := e.Offset - k.frame*fs
		if at+e.Size > int64(len(data)) {
			continue
		}
		b := data[at : at+e.Size]
		if r.check(e, b) == nil {
			r.o.Neighbour(e, b)
		}
	}
}

// fetchFrame reads frame k's compressed bytes with one range request and
// decompresses them, accepting exactly the frame's tar bytes (frameSize,
// or the rest of the layer for the last frame): no more, no less. The
// decoder is tar.go's, with its memory limits.
func (r *FileReader) fetchFrame(ctx context.Context, k frameKey) ([]byte, error) {
	l := r.snap.Config.Layers[k.layer]
	d := r.snap.DataLayer(k.layer).Digest
	st := r.starts[k.layer]
	if k.frame < 0 || k.frame >= int64(len(l.Frames)) {
		return nil, verifyErrorf("%s: layer %s has no frame %d", r.store, d, k.frame)
	}
	n := l.Frames[k.frame]
	t0 := time.Now()
	defer func() { r.fetchNanos.Add(int64(time.Since(t0))) }()
	rc, err := r.rr.ReadRange(ctx, d, st[k.frame], n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r.fetches.Add(1)
	cr := &countReader{r: io.LimitReader(rc, n), add: func(m int64) { r.bytes.Add(m) }}
	zr, err := newDecoder(cr)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	what := fmt.Sprintf("layer %s frame %d", d, k.frame)
	want := min(l.FrameSize, l.Size-k.frame*l.FrameSize)
	buf := make([]byte, want)
	if _, err := io.ReadFull(zr, buf); err != nil {
		if cr.err != nil {
			return nil, fmt.Errorf("%s: %s: %w", r.store, what, cr.err)
		}
		return nil, verifyErrorf("%s: %s: decompressing: %v", r.store, what, err)
	}
	var one [1]byte
	if m, _ := zr.Read(one[:]); m > 0 {
		return nil, verifyErrorf("%s: %s decompresses to more than %d bytes", r.store, what, want)
	}
	return buf, nil
}

// Prefetch fetches every frame of config layer i not fetched yet, at most
// workers at a time, until done or ctx ends: the rest of a layer once a
// client knows it will need most of it. Frames a read is fetching at the
// same time are shared, not fetched twice.
func (r *FileReader) Prefetch(ctx context.Context, i, workers int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for f := range int64(len(r.snap.Config.Layers[i].Frames)) {
		k := frameKey{i, f}
		r.mu.Lock()
		seen := r.seen[k]
		r.mu.Unlock()
		if !seen {
			g.Go(func() error {
				_, err := r.frame(gctx, k)
				return err
			})
		}
	}
	return g.Wait()
}

// Fetched reports how many frames of config layer i were fetched, of all,
// and the compressed bytes of those not fetched yet.
func (r *FileReader) Fetched(i int) (done, total int, rest int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for f, n := range r.snap.Config.Layers[i].Frames {
		if r.seen[frameKey{i, int64(f)}] {
			done++
		} else {
			rest += n
		}
	}
	return done, len(r.snap.Config.Layers[i].Frames), rest
}

// FetchTime is how long fetching a frame of n compressed bytes has taken
// on average so far (request, transfer, decompression); 0 before any.
func (r *FileReader) FetchTime(n int64) time.Duration {
	b := r.bytes.Load()
	if b == 0 {
		return 0
	}
	return time.Duration(float64(r.fetchNanos.Load()) * float64(n) / float64(b))
}
