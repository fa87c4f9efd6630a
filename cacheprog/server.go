package cacheprog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// maxInFlight bounds the requests answered at once: the go command sends
// one get per action it considers, all at once, and each may wait on the
// disk or (later) the network; this keeps a hostile or runaway client from
// starting unbounded goroutines while leaving room for real parallelism.
const maxInFlight = 64

// maxLineSize bounds a request line: a real one is under 300 bytes (put
// bodies come on their own line and are streamed, not buffered).
const maxLineSize = 64 << 10

// Server answers one go command's requests (one GOCACHEPROG session).
type Server struct {
	// Backend stores and finds objects.
	Backend Backend
	// Stats counts gets, hits and misses (the Store counts puts and the
	// remote); nil counts nothing.
	Stats *Stats
	// Log receives protocol errors; nil discards them.
	Log *slog.Logger
}

// session is one Serve call: the response writer and the requests in
// flight.
type session struct {
	srv      *Server
	stats    *Stats
	wmu      sync.Mutex
	enc      *json.Encoder
	w        *bufio.Writer
	inFlight sync.WaitGroup
	sem      chan struct{}
}

// Serve runs the protocol on r (the go command's requests) and w (the
// responses): the handshake, then gets answered concurrently and out of
// order, puts in order as their bodies arrive, until a close (answered
// after every request before it) or the end of r. An error is a broken
// stream (a malformed request line or body); a request the server cannot
// satisfy is answered with Err instead.
func (srv *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	s := &session{srv: srv, stats: srv.Stats, sem: make(chan struct{}, maxInFlight)}
	if s.stats == nil {
		s.stats = new(Stats)
	}
	s.w = bufio.NewWriter(w)
	s.enc = json.NewEncoder(s.w)
	defer s.inFlight.Wait()
	if err := s.respond(&Response{ID: 0, KnownCommands: knownCommands}); err != nil {
		return fmt.Errorf("cacheprog: handshake: %w", err)
	}
	br := bufio.NewReaderSize(r, maxLineSize)
	for {
		req, err := readRequest(br)
		if errors.Is(err, io.EOF) {
			return s.flush()
		} else if err != nil {
			return errors.Join(err, s.flush())
		}
		if done, err := s.handle(ctx, br, req); done || err != nil {
			return err
		}
	}
}

// handle answers one request; done is true after a close.
func (s *session) handle(ctx context.Context, br *bufio.Reader, req *Request) (done bool, err error) {
	switch req.Command {
	case CmdClose:
		s.inFlight.Wait()
		return true, s.respond(&Response{ID: req.ID})
	case CmdPut:
		// Answers held for a batch go out first: the body may take a
		// while to arrive and be stored.
		s.flush()
		return false, s.put(ctx, br, req)
	case CmdGet:
		if res, ok := s.getNow(req); ok {
			// The next request's answer carries this one when it is
			// already read: one write and one wake-up of the go command
			// for both. Serve flushes before it waits for more.
			s.write(res, !requestBuffered(br))
			return false, nil
		}
		// This get's answer comes from another goroutine, maybe after
		// the network: answers held for a batch go out now, or the read
		// loop would wait for more requests with them unwritten.
		s.flush()
		s.sem <- struct{}{}
		s.inFlight.Add(1)
		go func() {
			defer func() { <-s.sem; s.inFlight.Done() }()
			s.answer(s.get(ctx, req))
		}()
		return false, nil
	}
	s.answer(&Response{ID: req.ID, Err: fmt.Sprintf("unknown command %q", req.Command)})
	return false, nil
}

// localGetter is a Backend that can answer some gets at once, from local
// disk alone: Store without a Remote, or with one when the object is
// already here.
type localGetter interface {
	// getNow answers from what is local; done false means Get must be
	// asked (it may wait on the network).
	getNow(action ID) (obj Object, ok, done bool, err error)
}

// getNow answers a get in the read loop when the Backend can without
// waiting. A warm build is a thousand gets, each a round trip the go
// command waits on, and the hand-off to another goroutine (a thread
// wake-up) was a fifth of it; a local lookup is a few system calls.
func (s *session) getNow(req *Request) (*Response, bool) {
	lg, ok := s.srv.Backend.(localGetter)
	if !ok {
		return nil, false
	}
	action, err := ParseID(req.ActionID)
	if err != nil {
		return errResponse(req, fmt.Errorf("get: action %w", err)), true
	}
	obj, hit, done, err := lg.getNow(action)
	if !done {
		return nil, false
	}
	return s.getResponse(req, action, obj, hit, err), true
}

// get looks the action up.
func (s *session) get(ctx context.Context, req *Request) *Response {
	action, err := ParseID(req.ActionID)
	if err != nil {
		return errResponse(req, fmt.Errorf("get: action %w", err))
	}
	obj, ok, err := s.srv.Backend.Get(ctx, action)
	return s.getResponse(req, action, obj, ok, err)
}

// getResponse counts a get's answer and builds its response.
func (s *session) getResponse(req *Request, action ID, obj Object, ok bool, err error) *Response {
	if err != nil {
		return errResponse(req, err)
	}
	s.stats.get(ok, obj.Size)
	if !ok {
		if s.srv.Log != nil {
			s.srv.Log.Debug("cacheprog miss", "action", action.String())
		}
		return &Response{ID: req.ID, Miss: true}
	}
	t := obj.Time
	return &Response{ID: req.ID, OutputID: obj.OutputID.Bytes(), Size: obj.Size, Time: &t, DiskPath: obj.DiskPath}
}

// put stores the request's body, which must be read from br whatever
// happens to the request: the stream continues after it.
func (s *session) put(ctx context.Context, br *bufio.Reader, req *Request) error {
	if req.BodySize < 0 {
		return fmt.Errorf("cacheprog: put %d: negative BodySize %d", req.ID, req.BodySize)
	}
	body := io.Reader(eofReader{})
	var b *bodyReader
	if req.BodySize > 0 {
		var err error
		if b, err = openBody(br); err != nil {
			return fmt.Errorf("cacheprog: put %d: %w", req.ID, err)
		}
		body = b.decoder()
	}
	res := s.storePut(ctx, req, body)
	if b != nil {
		if err := b.finish(); err != nil {
			return fmt.Errorf("cacheprog: put %d: %w", req.ID, err)
		}
	}
	s.answer(res)
	return nil
}

func (s *session) storePut(ctx context.Context, req *Request, body io.Reader) *Response {
	action, err := ParseID(req.ActionID)
	if err != nil {
		return errResponse(req, fmt.Errorf("put: action %w", err))
	}
	output, err := ParseID(req.OutputID)
	if err != nil {
		return errResponse(req, fmt.Errorf("put: output %w", err))
	}
	obj, err := s.srv.Backend.Put(ctx, action, output, body, req.BodySize)
	if err != nil {
		return errResponse(req, err)
	}
	return &Response{ID: req.ID, DiskPath: obj.DiskPath}
}

func errResponse(req *Request, err error) *Response {
	return &Response{ID: req.ID, Err: err.Error()}
}

// answer writes a response and flushes it; a failed write is the client's
// end going away, which the read loop sees next.
func (s *session) answer(res *Response) { s.write(res, true) }

// write is answer with the flush left to the caller when flush is false.
func (s *session) write(res *Response, flush bool) {
	if res.Err != "" {
		s.stats.errors.Add(1)
		if s.srv.Log != nil {
			s.srv.Log.Warn("cacheprog request failed", "id", res.ID, "err", res.Err)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.enc.Encode(res); err == nil && flush {
		_ = s.w.Flush()
	}
}

func (s *session) respond(res *Response) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.enc.Encode(res); err != nil {
		return err
	}
	return s.w.Flush()
}

// flush writes what write left buffered.
func (s *session) flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.w.Flush()
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
