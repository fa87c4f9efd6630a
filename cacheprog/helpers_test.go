package cacheprog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"
)

// client speaks to a Server as cmd/go/internal/cache/prog.go does: each
// request is a JSON line followed by a blank line, and a put's body is a
// base64 JSON string on the line after it.
type client struct {
	t    *testing.T
	w    *io.PipeWriter
	dec  *json.Decoder
	done chan error
}

func startClient(t *testing.T, b Backend, stats *Stats) *client {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &client{t: t, w: inW, dec: json.NewDecoder(outR), done: make(chan error, 1)}
	go func() {
		err := (&Server{Backend: b, Stats: stats}).Serve(context.Background(), inR, outW)
		outW.CloseWithError(io.EOF)
		c.done <- err
	}()
	hs := c.read()
	if hs.ID != 0 || len(hs.KnownCommands) != 3 {
		t.Fatalf("handshake: %+v", hs)
	}
	t.Cleanup(func() { inW.Close() })
	return c
}

func (c *client) send(req Request, body []byte) {
	c.t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(req); err != nil {
		c.t.Fatal(err)
	}
	buf.WriteByte('\n')
	if len(body) > 0 {
		buf.WriteByte('"')
		buf.WriteString(base64.StdEncoding.EncodeToString(body))
		buf.WriteString("\"\n")
	}
	if _, err := c.w.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// raw writes bytes as they are: hostile input.
func (c *client) raw(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.w, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() *Response {
	c.t.Helper()
	res := new(Response)
	if err := c.dec.Decode(res); err != nil {
		c.t.Fatalf("reading response: %v", err)
	}
	return res
}

// close sends close and checks the answer and the server's end.
func (c *client) close(id int64) error {
	c.t.Helper()
	c.send(Request{ID: id, Command: CmdClose}, nil)
	if res := c.read(); res.ID != id || res.Err != "" {
		c.t.Fatalf("close: %+v", res)
	}
	return <-c.done
}

func actionID(s string) []byte {
	h := sha256.Sum256([]byte("action " + s))
	return h[:]
}

func outputOf(body []byte) []byte {
	h := sha256.Sum256(body)
	return h[:]
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
