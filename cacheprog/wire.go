package cacheprog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// readRequest reads the next request line; blank lines (the go command
// writes one after each request) are skipped. io.EOF is a clean end.
func readRequest(br *bufio.Reader) (*Request, error) {
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("cacheprog: request line longer than %d bytes", maxLineSize)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return nil, err // io.EOF between requests: a clean end
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("cacheprog: reading request: %w", err)
		}
		req := new(Request)
		if err := json.Unmarshal(line, req); err != nil {
			return nil, fmt.Errorf("cacheprog: malformed request %.100q: %w", line, err)
		}
		return req, nil
	}
}

// requestBuffered reports whether a whole request line is already read
// into br, so that reading it cannot block (the go command writes each
// request, and the blank line after it, in one write).
func requestBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	buf = bytes.TrimLeft(buf, " \t\r\n")
	return bytes.IndexByte(buf, '\n') >= 0
}

// bodyReader streams a put body: a JSON string of base64 on the line after
// the request. base64's alphabet has no '"' or '\', so the string ends at
// the first '"'.
type bodyReader struct {
	br   *bufio.Reader
	done bool // the closing quote was read
}

// openBody skips the whitespace before the body and its opening quote.
func openBody(br *bufio.Reader) (*bodyReader, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("body: %w", noEOF(err))
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			return &bodyReader{br: br}, nil
		}
		return nil, fmt.Errorf("body: want a base64 JSON string, got %q", c)
	}
}

// decoder is the decoded body.
func (b *bodyReader) decoder() io.Reader { return base64.NewDecoder(base64.StdEncoding, b) }

// Read returns the base64 text up to the closing quote.
func (b *bodyReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.br.Buffered() == 0 {
		if _, err := b.br.Peek(1); err != nil {
			return 0, fmt.Errorf("body: %w", noEOF(err))
		}
	}
	buf, _ := b.br.Peek(min(len(p), b.br.Buffered()))
	if i := bytes.IndexByte(buf, '"'); i >= 0 {
		n := copy(p, buf[:i])
		_, _ = b.br.Discard(i + 1)
		b.done = true
		return n, nil
	}
	n := copy(p, buf)
	_, _ = b.br.Discard(n)
	return n, nil
}

// finish reads what the store left of the body, up to its closing quote,
// so the next request starts where it should.
func (b *bodyReader) finish() error {
	_, err := io.Copy(io.Discard, b)
	return err
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
