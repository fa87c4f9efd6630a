package cacheprog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/melcache/melcache/mount"
)

func openTestStore(t *testing.T, stats *Stats) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gocache")
	st, err := OpenStore(dir, StoreOptions{Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dir
}

// TestServePutGet: a put's body reaches the disk in Go's layout with Go's
// "-a" line, and a get finds it with a DiskPath whose content is the body.
func TestServePutGet(t *testing.T) {
	var stats Stats
	st, dir := openTestStore(t, &stats)
	c := startClient(t, st, &stats)
	body := bytes.Repeat([]byte("object "), 10000) // longer than one read buffer
	a, out := actionID("one"), outputOf(body)
	c.send(Request{ID: 1, Command: CmdPut, ActionID: a, OutputID: out, BodySize: int64(len(body))}, body)
	res := c.read()
	if res.ID != 1 || res.Err != "" || res.DiskPath == "" {
		t.Fatalf("put: %+v", res)
	}
	c.send(Request{ID: 2, Command: CmdGet, ActionID: a}, nil)
	res = c.read()
	if res.ID != 2 || res.Miss || !bytes.Equal(res.OutputID, out) || res.Size != int64(len(body)) || res.Time == nil {
		t.Fatalf("get: %+v", res)
	}
	if got, err := os.ReadFile(res.DiskPath); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("DiskPath %s: %v, %d bytes, want the body", res.DiskPath, err, len(got))
	}
	aid, oid := ID{hex: hexOf(a)}, ID{hex: hexOf(out)}
	if want := filepath.Join(dir, oid.name("d")); res.DiskPath != want {
		t.Errorf("DiskPath %s, want %s", res.DiskPath, want)
	}
	line, err := os.ReadFile(filepath.Join(dir, aid.name("a")))
	if err != nil {
		t.Fatal(err)
	}
	e, err := mount.ParseActionEntry(line, aid.String())
	if err != nil || e.Out != oid.String() || e.Size != int64(len(body)) {
		t.Fatalf("-a entry %q: %+v, %v", line, e, err)
	}
	c.send(Request{ID: 3, Command: CmdGet, ActionID: actionID("two")}, nil)
	if res := c.read(); res.ID != 3 || !res.Miss {
		t.Fatalf("get of a missing action: %+v", res)
	}
	if err := c.close(4); err != nil {
		t.Fatal(err)
	}
	r := stats.Report()
	if r.Gets != 2 || r.Hits != 1 || r.Misses != 1 || r.Puts != 1 || r.BytesIn != int64(len(body)) || r.BytesOut != int64(len(body)) {
		t.Errorf("stats %+v", r)
	}
}

// TestServeEmptyPutAndBadBody: a zero-size put has no body line; a body
// that does not match its output ID is refused, nothing is stored, and the
// stream goes on.
func TestServeEmptyPutAndBadBody(t *testing.T) {
	st, dir := openTestStore(t, nil)
	c := startClient(t, st, nil)
	c.send(Request{ID: 1, Command: CmdPut, ActionID: actionID("empty"), OutputID: outputOf(nil)}, nil)
	if res := c.read(); res.Err != "" || res.DiskPath == "" {
		t.Fatalf("empty put: %+v", res)
	}
	c.send(Request{ID: 2, Command: CmdPut, ActionID: actionID("bad"), OutputID: outputOf([]byte("other")), BodySize: 4}, []byte("body"))
	if res := c.read(); res.ID != 2 || !strings.Contains(res.Err, "SHA-256") {
		t.Fatalf("mismatched body: %+v", res)
	}
	c.send(Request{ID: 3, Command: CmdPut, ActionID: actionID("short"), OutputID: outputOf([]byte("body!")), BodySize: 5}, []byte("body"))
	if res := c.read(); res.ID != 3 || res.Err == "" {
		t.Fatalf("short body: %+v", res)
	}
	c.send(Request{ID: 4, Command: CmdGet, ActionID: actionID("empty")}, nil)
	if res := c.read(); res.ID != 4 || res.Miss || res.Size != 0 {
		t.Fatalf("get of the empty object: %+v", res)
	}
	if err := c.close(5); err != nil {
		t.Fatal(err)
	}
	// Only the empty object and its action: no temporary files, nothing
	// for the refused puts.
	var names []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, filepath.Base(p))
		}
		return nil
	})
	if len(names) != 2 {
		t.Errorf("files in GOCACHE: %q, want the empty object's -a and -d", names)
	}
}

// gateBackend answers gets for "slow" only when released, others at once.
type gateBackend struct {
	slow    ID
	release chan struct{}
}

func (g *gateBackend) Get(ctx context.Context, action ID) (Object, bool, error) {
	if action == g.slow {
		<-g.release
	}
	return Object{}, false, nil
}

func (g *gateBackend) Put(context.Context, ID, ID, io.Reader, int64) (Object, error) {
	return Object{}, errors.New("read-only")
}

// TestServeOutOfOrder: a get that waits does not hold up the ones after
// it; its answer comes later, with its own ID, and close waits for it.
func TestServeOutOfOrder(t *testing.T) {
	slow, _ := ParseID(actionID("slow"))
	g := &gateBackend{slow: slow, release: make(chan struct{})}
	c := startClient(t, g, nil)
	c.send(Request{ID: 1, Command: CmdGet, ActionID: actionID("slow")}, nil)
	c.send(Request{ID: 2, Command: CmdGet, ActionID: actionID("fast")}, nil)
	c.send(Request{ID: 3, Command: CmdGet, ActionID: actionID("fast too")}, nil)
	got := map[int64]bool{}
	for range 2 {
		res := c.read() // a server answering in order would block here forever
		if res.ID == 1 || !res.Miss {
			t.Fatalf("answer %+v before the slow get was released", res)
		}
		got[res.ID] = true
	}
	if !got[2] || !got[3] {
		t.Fatalf("answers %v, want 2 and 3", got)
	}
	c.send(Request{ID: 4, Command: CmdClose}, nil)
	close(g.release)
	if res := c.read(); res.ID != 1 || !res.Miss {
		t.Fatalf("slow get's answer: %+v (close must wait for it)", res)
	}
	if res := c.read(); res.ID != 4 {
		t.Fatalf("close answered as %+v", res)
	}
	if err := <-c.done; err != nil {
		t.Fatal(err)
	}
}

// TestServeHandshakeAndEOF: the handshake comes first without a request,
// and the end of the input (no close) ends Serve cleanly.
func TestServeHandshakeAndEOF(t *testing.T) {
	st, _ := openTestStore(t, nil)
	var out bytes.Buffer
	if err := (&Server{Backend: st}).Serve(context.Background(), strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":0,"KnownCommands":["get","put","close"]}` + "\n"; out.String() != want {
		t.Fatalf("handshake %q, want %q", out.String(), want)
	}
}

// TestServeBatchedGets: gets that arrive together (one write, as two go
// command workers' requests can) are answered inline with one flush for
// the batch: every one is answered, once, hits and misses right, and the
// last is not held back waiting for more requests.
func TestServeBatchedGets(t *testing.T) {
	var stats Stats
	st, _ := openTestStore(t, &stats)
	c := startClient(t, st, &stats)
	hits := map[string]bool{}
	for i := range 3 {
		body := []byte(strings.Repeat("x", i+1))
		name := string(rune('a' + i))
		hits[name] = true
		c.send(Request{ID: int64(100 + i), Command: CmdPut, ActionID: actionID(name), OutputID: outputOf(body), BodySize: int64(len(body))}, body)
		if res := c.read(); res.Err != "" {
			t.Fatalf("put %s: %+v", name, res)
		}
	}
	var batch bytes.Buffer
	want := map[int64]bool{} // ID: a hit
	for i := range 50 {
		name := string(rune('a' + i%5)) // a, b, c hit; d, e miss
		req := Request{ID: int64(i + 1), Command: CmdGet, ActionID: actionID(name)}
		b, _ := json.Marshal(req)
		batch.Write(b)
		batch.WriteString("\n\n")
		want[req.ID] = hits[name]
	}
	c.raw(batch.String())
	for range 50 {
		res := c.read()
		hit, ok := want[res.ID]
		if !ok {
			t.Fatalf("response %+v: not a pending request", res)
		}
		delete(want, res.ID)
		if res.Err != "" || res.Miss == hit {
			t.Errorf("get %d: %+v, want hit %v", res.ID, res, hit)
		}
	}
	if err := c.close(200); err != nil {
		t.Fatal(err)
	}
	if r := stats.Report(); r.Gets != 50 || r.Hits != 30 {
		t.Errorf("stats %+v, want 50 gets and 30 hits", r)
	}
}

// blockingRemote is a Remote whose fetches wait until release is closed:
// a registry that is slow to answer.
type blockingRemote struct{ release chan struct{} }

func (r blockingRemote) Fetch(ctx context.Context, _ ID) (Fetched, error) {
	<-r.release
	return Fetched{}, ErrNotFound
}

// stallReader returns its batch, then reports on waiting that the server
// has read everything and waits for more, and blocks until more is closed:
// a go command that sent two gets and now waits for their answers.
type stallReader struct {
	batch   []byte
	waiting chan struct{}
	more    chan struct{}
	once    sync.Once
}

func (r *stallReader) Read(p []byte) (int, error) {
	if len(r.batch) > 0 {
		n := copy(p, r.batch)
		r.batch = r.batch[n:]
		return n, nil
	}
	r.once.Do(func() { close(r.waiting) })
	<-r.more
	return 0, io.EOF
}

// requestLines writes requests as the go command does: each a JSON line
// and a blank line.
func requestLines(reqs ...Request) *bytes.Buffer {
	var batch bytes.Buffer
	for _, req := range reqs {
		b, _ := json.Marshal(req)
		batch.Write(b)
		batch.WriteString("\n\n")
	}
	return &batch
}

// serveStalled serves batch on b and returns what the server has written
// once it has read all of it and waits for more; finish ends the input
// and returns all it wrote and Serve's error.
func serveStalled(b Backend, batch []byte) (written string, finish func() (string, error)) {
	r := &stallReader{batch: batch, waiting: make(chan struct{}), more: make(chan struct{})}
	var w syncBuffer
	done := make(chan error, 1)
	go func() { done <- (&Server{Backend: b}).Serve(context.Background(), r, &w) }()
	<-r.waiting
	return w.String(), func() (string, error) {
		close(r.more)
		err := <-done
		return w.String(), err
	}
}

// syncBuffer is what the server has written, safe to read meanwhile.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestServeInlineAnswerNotHeldByRemoteGet: a local hit answered in the read
// loop, then a get in the same batch that goes to the remote: once the
// server waits for more requests, the hit's answer has been written out,
// not held in the buffer until the remote answers (the go command waits
// on it, and may send nothing more until it has it).
func TestServeInlineAnswerNotHeldByRemoteGet(t *testing.T) {
	release := make(chan struct{})
	st, err := OpenStore(filepath.Join(t.TempDir(), "gocache"), StoreOptions{Remote: blockingRemote{release}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	body := []byte("local object")
	local, _ := ParseID(actionID("local"))
	out, _ := ParseID(outputOf(body))
	if _, err := st.Put(context.Background(), local, out, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	batch := requestLines(
		Request{ID: 1, Command: CmdGet, ActionID: actionID("local")},
		Request{ID: 2, Command: CmdGet, ActionID: actionID("remote")})
	written, finish := serveStalled(st, batch.Bytes())
	close(release)
	all, err := finish()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(written, `"ID":1,`) {
		t.Errorf("the server waits for requests with the hit's answer unwritten; written so far: %q", written)
	}
	if !strings.Contains(all, `"ID":2,`) {
		t.Errorf("no answer to the remote get: %q", all)
	}
}

// TestServeInlineAnswerNotHeldByPutBody: a get answered in the read loop,
// then a put whose body has not all arrived: while the server waits for
// the body, the get's answer has been written out.
func TestServeInlineAnswerNotHeldByPutBody(t *testing.T) {
	var stats Stats
	st, _ := openTestStore(t, &stats)
	body := []byte("a body sent slowly")
	batch := requestLines(
		Request{ID: 1, Command: CmdGet, ActionID: actionID("x")},
		Request{ID: 2, Command: CmdPut, ActionID: actionID("y"), OutputID: outputOf(body), BodySize: int64(len(body))})
	batch.WriteString("\"" + base64.StdEncoding.EncodeToString(body)[:8])
	written, finish := serveStalled(st, batch.Bytes())
	if _, err := finish(); err == nil {
		t.Error("a body cut short: no error")
	}
	if !strings.Contains(written, `"ID":1,`) {
		t.Errorf("the server waits for a put's body with the get's answer unwritten; written so far: %q", written)
	}
}
