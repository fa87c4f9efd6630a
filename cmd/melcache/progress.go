package main

import (
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress display tuning.
const (
	// progressRefresh is how often bars redraw: fast enough to look live,
	// slow enough that a CI log captured from a pty is not flooded.
	progressRefresh = 150 * time.Millisecond
	// progressWidth keeps a bar plus its counters inside an 80-column
	// terminal next to a digest-prefix name.
	progressWidth = 32
	// progressLineWidth is the line width when the output's own width is
	// unknown (not a terminal): room for name, bar, counters and speed.
	progressLineWidth = 110
	// progressNameWidth pads names so bars line up.
	progressNameWidth = 24
)

// progressBars shows one bar per transfer on a terminal (vbauerster/mpb),
// and nothing otherwise: newTransferBars enables it for a terminal stderr
// without --quiet or --json. It is the CLI's rendering of the library's
// oci.TransferProgress: oci reports transfers through that interface and
// draws nothing itself. A disabled progressBars costs nothing; its readers
// are the callers' own. Safe for concurrent use.
type progressBars struct {
	p    *mpb.Progress // nil when disabled
	mu   sync.Mutex
	bars []*transferBar
}

// newProgressBars returns bars drawing to w (usually os.Stderr) when
// enabled, or a silent one.
func newProgressBars(w io.Writer, enabled bool) *progressBars {
	if !enabled || w == nil {
		return &progressBars{}
	}
	return &progressBars{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(progressLineWidth), mpb.WithRefreshRate(progressRefresh),
		// Draw even when w is not a terminal: the caller decided (isTerminal).
		mpb.WithAutoRefresh())}
}

// Enabled reports whether bars are drawn.
func (p *progressBars) Enabled() bool { return p != nil && p.p != nil }

// transferBar is one transfer's bar. A transfer that is retried from the start
// wraps each attempt's reader with Reader, which restarts the count.
type transferBar struct {
	b    *mpb.Bar // nil when disabled
	size int64
}

// Bar adds a bar for a transfer of size bytes (≤ 0: unknown) named name
// (e.g. "gocache layer 3 sha256:ab12…"). Finish it with Done or Abort, or
// let a reader from Reader reach EOF.
func (p *progressBars) Bar(name string, size int64) *transferBar {
	if !p.Enabled() {
		return &transferBar{size: size}
	}
	total := size
	if total < 0 {
		total = 0
	}
	b := p.p.AddBar(total, mpb.BarWidth(progressWidth),
		mpb.PrependDecorators(decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace, W: progressNameWidth})),
		mpb.AppendDecorators(
			decor.CountersKibiByte("% .1f / % .1f"),
			decor.Name(" "),
			decor.AverageSpeed(decor.SizeB1024(0), "% .1f"),
		),
	)
	bar := &transferBar{b: b, size: size}
	p.mu.Lock()
	p.bars = append(p.bars, bar)
	p.mu.Unlock()
	return bar
}

// Track wraps r so reading it advances a new bar; EOF completes the bar.
// It is Bar(name, size).Reader(r).
func (p *progressBars) Track(name string, size int64, r io.Reader) io.Reader {
	if !p.Enabled() {
		return r
	}
	return p.Bar(name, size).Reader(r)
}

// Start adds a bar and returns functions to advance it by n bytes and to
// finish it (oci.TransferProgress). finish completes the bar when it
// reached its size or never started (a skipped blob), and otherwise leaves
// it aborted where it stopped (a failed transfer).
func (p *progressBars) Start(name string, size int64) (add func(n int64), finish func()) {
	if !p.Enabled() {
		return func(int64) {}, func() {}
	}
	b := p.Bar(name, size)
	add = func(n int64) { b.b.IncrInt64(n) }
	finish = func() {
		if cur := b.b.Current(); cur == 0 || size <= 0 || cur >= size {
			b.Done()
		} else {
			b.Abort()
		}
	}
	return add, finish
}

// Reader wraps r so reading it advances the bar from zero (a new attempt of
// the transfer). EOF completes the bar. With progress disabled it returns r.
// If r is an io.Closer, so is the result.
func (b *transferBar) Reader(r io.Reader) io.Reader {
	if b.b == nil {
		return r
	}
	b.b.SetCurrent(0)
	cr := &barReader{r: r, b: b}
	if c, ok := r.(io.Closer); ok {
		return &barReadCloser{cr, c}
	}
	return cr
}

// Done completes the bar (e.g. a blob skipped because the store had it).
func (b *transferBar) Done() {
	if b.b == nil {
		return
	}
	if b.size > 0 {
		b.b.SetCurrent(b.size)
	}
	b.b.SetTotal(-1, true)
}

// Abort stops the bar where it is (a failed transfer), leaving it shown.
func (b *transferBar) Abort() {
	if b.b != nil {
		b.b.Abort(false)
	}
}

type barReader struct {
	r io.Reader
	b *transferBar
}

func (r *barReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.b.b.IncrBy(n)
	if err == io.EOF {
		r.b.b.SetTotal(-1, true)
	}
	return n, err
}

type barReadCloser struct {
	*barReader
	c io.Closer
}

func (r *barReadCloser) Close() error { return r.c.Close() }

// Writer returns a writer for log lines while bars are drawn (they print
// above the bars instead of tearing them), or w when progress is disabled.
func (p *progressBars) Writer(w io.Writer) io.Writer {
	if !p.Enabled() {
		return w
	}
	return p.p
}

// Wait aborts the bars of transfers that never finished (so a failed push
// does not hang here), then waits for the display to settle. Call it once,
// after the transfers.
func (p *progressBars) Wait() {
	if !p.Enabled() {
		return
	}
	p.mu.Lock()
	for _, b := range p.bars {
		if !b.b.Completed() {
			b.b.Abort(false)
		}
	}
	p.mu.Unlock()
	p.p.Wait()
}

// newTransferBars returns the bars for a push or pull: drawn on a terminal
// stderr unless --json or --quiet. Wait on them after the transfer.
func newTransferBars(g *globals, asJSON bool) *progressBars {
	return newProgressBars(g.stderr, !asJSON && !g.quiet && isTerminal(g.stderr))
}
