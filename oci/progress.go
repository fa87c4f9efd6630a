package oci

import (
	"io"
	"os"
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

// Progress shows one bar per transfer on a terminal (vbauerster/mpb), and
// nothing otherwise: the CLI enables it for a terminal stderr without
// --quiet or --json (see IsTerminal). A disabled Progress costs nothing;
// its readers are the callers' own. Safe for concurrent use.
type Progress struct {
	p    *mpb.Progress // nil when disabled
	mu   sync.Mutex
	bars []*Bar
}

// NewProgress returns a Progress drawing to w (usually os.Stderr) when
// enabled, or a silent one.
func NewProgress(w io.Writer, enabled bool) *Progress {
	if !enabled || w == nil {
		return &Progress{}
	}
	return &Progress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(progressLineWidth), mpb.WithRefreshRate(progressRefresh),
		// Draw even when w is not a terminal: the caller decided (IsTerminal).
		mpb.WithAutoRefresh())}
}

// Enabled reports whether bars are drawn.
func (p *Progress) Enabled() bool { return p != nil && p.p != nil }

// Bar is one transfer's bar. A transfer that is retried from the start
// wraps each attempt's reader with Reader, which restarts the count.
type Bar struct {
	b    *mpb.Bar // nil when disabled
	size int64
}

// Bar adds a bar for a transfer of size bytes (≤ 0: unknown) named name
// (e.g. "gocache layer 3 sha256:ab12…"). Finish it with Done or Abort, or
// let a reader from Reader reach EOF.
func (p *Progress) Bar(name string, size int64) *Bar {
	if !p.Enabled() {
		return &Bar{size: size}
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
	bar := &Bar{b: b, size: size}
	p.mu.Lock()
	p.bars = append(p.bars, bar)
	p.mu.Unlock()
	return bar
}

// Track wraps r so reading it advances a new bar; EOF completes the bar.
// It is Bar(name, size).Reader(r).
func (p *Progress) Track(name string, size int64, r io.Reader) io.Reader {
	if !p.Enabled() {
		return r
	}
	return p.Bar(name, size).Reader(r)
}

// Start adds a bar and returns functions to advance it by n bytes and to
// finish it: the shape of the snapshot code's TransferProgress, so a
// *Progress can be passed there. finish completes the bar when it reached
// its size or never started (a skipped blob), and otherwise leaves it
// aborted where it stopped (a failed transfer).
func (p *Progress) Start(name string, size int64) (add func(n int64), finish func()) {
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
func (b *Bar) Reader(r io.Reader) io.Reader {
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
func (b *Bar) Done() {
	if b.b == nil {
		return
	}
	if b.size > 0 {
		b.b.SetCurrent(b.size)
	}
	b.b.SetTotal(-1, true)
}

// Abort stops the bar where it is (a failed transfer), leaving it shown.
func (b *Bar) Abort() {
	if b.b != nil {
		b.b.Abort(false)
	}
}

type barReader struct {
	r io.Reader
	b *Bar
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
func (p *Progress) Writer(w io.Writer) io.Writer {
	if !p.Enabled() {
		return w
	}
	return p.p
}

// Wait aborts the bars of transfers that never finished (so a failed push
// does not hang here), then waits for the display to settle. Call it once,
// after the transfers.
func (p *Progress) Wait() {
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

// IsTerminal reports whether w is a terminal, the condition for drawing
// progress bars.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminalFd(f.Fd())
}
