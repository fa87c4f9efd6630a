package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/melcache/melcache/oci"
)

func TestProgressDisabledIsPassThrough(t *testing.T) {
	p := newProgressBars(os.Stderr, false)
	r := strings.NewReader("data")
	if got := p.Track("x", 4, r); got != io.Reader(r) {
		t.Error("disabled Track wrapped the reader")
	}
	b := p.Bar("y", 10)
	if got := b.Reader(r); got != io.Reader(r) {
		t.Error("disabled Bar.Reader wrapped the reader")
	}
	b.Done()
	b.Abort()
	if p.Writer(os.Stderr) != io.Writer(os.Stderr) {
		t.Error("disabled Writer is not the given writer")
	}
	p.Wait()
}

// syncBuffer is a bytes.Buffer safe for mpb's render goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressBars(t *testing.T) {
	var out syncBuffer
	p := newProgressBars(&out, true)
	data := bytes.Repeat([]byte("x"), 100<<10)

	// A completed transfer, read through a closer.
	rc := p.Track("layer-one", int64(len(data)), io.NopCloser(bytes.NewReader(data)))
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the bar: %d bytes, %v", len(got), err)
	}
	if c, ok := rc.(io.Closer); !ok || c.Close() != nil {
		t.Error("Track lost the reader's Close")
	}
	// A retried transfer restarts its count; a skipped one is Done; one
	// that failed half-way is left unfinished: Wait must not hang on it.
	b := p.Bar("layer-two", int64(len(data)))
	io.CopyN(io.Discard, b.Reader(bytes.NewReader(data)), 1000)
	io.Copy(io.Discard, b.Reader(bytes.NewReader(data)))
	p.Bar("skipped", 5).Done()
	half := p.Bar("failed", int64(len(data)))
	io.CopyN(io.Discard, half.Reader(bytes.NewReader(data)), 10)
	p.Wait()
	s := out.String()
	for _, want := range []string{"layer-one", "layer-two", "skipped", "failed", "100.0 KiB / 100.0 KiB"} {
		if !strings.Contains(s, want) {
			t.Errorf("progress output lacks %q:\n%s", want, s)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	var b bytes.Buffer
	if isTerminal(&b) {
		t.Error("a buffer is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
}

// The bars are what push and pull report to (oci.Options.Progress).
var _ oci.TransferProgress = (*progressBars)(nil)

func TestProgressStart(t *testing.T) {
	var out syncBuffer
	p := newProgressBars(&out, true)
	add, done := p.Start("started", 2048)
	add(1024)
	add(1024)
	done()
	_, skip := p.Start("skipped-blob", 4096)
	skip()
	add, fail := p.Start("cut-short", 4096)
	add(100)
	fail()
	p.Wait()
	s := out.String()
	for _, want := range []string{"started", "2.0 KiB / 2.0 KiB", "skipped-blob", "4.0 KiB / 4.0 KiB", "cut-short", "100.0 b / 4.0 KiB"} {
		if !strings.Contains(s, want) {
			t.Errorf("progress output lacks %q:\n%s", want, s)
		}
	}
	// Disabled: no-ops.
	q := newProgressBars(&out, false)
	a, d := q.Start("x", 1)
	a(1)
	d()
	q.Wait()
}
