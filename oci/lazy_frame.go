package oci

import (
	"context"
	"fmt"
	"io"
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
		r.neighbours(k, c.data)
	}
	return c.data, c.err
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
