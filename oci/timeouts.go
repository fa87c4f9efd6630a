package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Network timeout defaults. A snapshot layer can be gigabytes on a slow
// CI link, so nothing bounds a whole transfer; what is bounded is silence.
// A stalled registry (or a proxy that lost the upstream) otherwise holds a
// build forever: issue 11, finding 6.
const (
	// DefaultConnectTimeout bounds TCP connection setup and the TLS
	// handshake: a registry that accepts no connection in 30 s is down,
	// not slow (ggcr's and Docker's own dial timeout).
	DefaultConnectTimeout = 30 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for a response's
	// headers once the request is sent. A minute covers a registry that
	// must move a finished multi-GB upload inside its storage before it
	// answers the final PUT, or a blob GET that is redirected to a cold
	// object store; a healthy registry answers in well under a second.
	DefaultResponseHeaderTimeout = 60 * time.Second
	// DefaultIdleReadTimeout bounds the silence within a response body:
	// no byte for this long and the read fails. A slow link still
	// delivers bytes every few milliseconds and TCP's own retransmission
	// back-off stays under a minute on lossy links, so only a stall
	// reaches it; it is not a bound on the transfer, which may take
	// hours for a large layer.
	DefaultIdleReadTimeout = 60 * time.Second
	// defaultStallAttempts caps the attempts per request, or the
	// downloads of one blob, that may end in a timeout. Each costs a full
	// timeout, so a stalled registry is given fewer chances than one that
	// resets connections: three stalls in a row mean it is not coming
	// back soon, and the build is better served by the error.
	defaultStallAttempts = 3
)

// Environment variables the CLI reads the timeouts from (docs/stores.md).
const (
	EnvConnectTimeout        = "MELCACHE_CONNECT_TIMEOUT"
	EnvResponseHeaderTimeout = "MELCACHE_HEADER_TIMEOUT"
	EnvIdleReadTimeout       = "MELCACHE_IDLE_TIMEOUT"
)

// Timeouts bound a registry's silence. The zero value of a field means its
// default above.
type Timeouts struct {
	// Connect bounds connection setup and the TLS handshake.
	Connect time.Duration
	// ResponseHeader bounds the wait for response headers after the
	// request was sent.
	ResponseHeader time.Duration
	// IdleRead bounds the time one read of a response body waits for a
	// byte, and the time an upload's body waits for the connection to
	// take its last chunk.
	IdleRead time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = DefaultConnectTimeout
	}
	if t.ResponseHeader <= 0 {
		t.ResponseHeader = DefaultResponseHeaderTimeout
	}
	if t.IdleRead <= 0 {
		t.IdleRead = DefaultIdleReadTimeout
	}
	return t
}

// TimeoutsFromEnv reads the timeouts from the environment variables above
// through getenv (os.Getenv in the CLI); unset ones keep their defaults.
// Values are Go durations ("90s", "2m").
func TimeoutsFromEnv(getenv func(string) string) (Timeouts, error) {
	var t Timeouts
	for _, v := range []struct {
		env string
		dst *time.Duration
	}{{EnvConnectTimeout, &t.Connect}, {EnvResponseHeaderTimeout, &t.ResponseHeader}, {EnvIdleReadTimeout, &t.IdleRead}} {
		s := getenv(v.env)
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return Timeouts{}, fmt.Errorf("%s=%q: want a positive duration such as 30s or 2m", v.env, s)
		}
		*v.dst = d
	}
	return t.withDefaults(), nil
}

// TimeoutError is a registry that went silent for longer than a timeout.
// It is a net.Error whose Timeout() is true, so the retry layers treat it
// as transient (within defaultStallAttempts).
type TimeoutError struct {
	// Registry is the host[:port] that went silent.
	Registry string
	// What names the request: "blob sha256:…", "manifest TAG" or a path.
	What string
	// Waiting is what did not come: "connection", "response headers",
	// "data", "upload progress".
	Waiting string
	// Limit is the timeout that was reached, and Env the variable that
	// changes it.
	Limit time.Duration
	Env   string
	// Err is the underlying error.
	Err error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("registry %s stalled: no %s for %s within %v (%s changes the limit)", e.Registry, e.Waiting, e.What, e.Limit, e.Env)
}

func (e *TimeoutError) Unwrap() error   { return e.Err }
func (e *TimeoutError) Timeout() bool   { return true }
func (e *TimeoutError) Temporary() bool { return true }

// isStall reports whether err is a timeout of ours.
func isStall(err error) bool {
	var te *TimeoutError
	return errors.As(err, &te)
}

// requestWhat names a registry request by its URL path for errors.
func requestWhat(req *http.Request) string {
	p := req.URL.Path
	for _, kind := range []string{"blobs", "manifests"} {
		if _, rest, ok := strings.Cut(p, "/"+kind+"/"); ok && rest != "" && !strings.HasPrefix(rest, "uploads") {
			return strings.TrimSuffix(kind, "s") + " " + rest
		}
	}
	return req.Method + " " + p
}

// timeoutTransport sits right above the base transport: it names the
// registry, the request and the limit in connect and header timeouts, and
// bounds the silence within every response body (ggcr and our resuming
// reader both read bodies; this covers them all).
type timeoutTransport struct {
	inner http.RoundTripper
	t     Timeouts
}

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	out := req.WithContext(ctx)
	var up *idleUpload
	if req.Body != nil && req.Body != http.NoBody {
		up = &idleUpload{rc: req.Body, cancel: cancel}
		up.timer = time.AfterFunc(t.t.IdleRead, up.fire)
		up.timer.Stop()
		up.limit = t.t.IdleRead
		out.Body = up
	}
	resp, err := t.inner.RoundTrip(out)
	if up != nil {
		up.timer.Stop()
	}
	if err != nil {
		cancel()
		var ne net.Error
		if req.Context().Err() == nil && up != nil && up.stalled() {
			return nil, &TimeoutError{Registry: req.URL.Host, What: requestWhat(req), Waiting: "upload progress",
				Limit: t.t.IdleRead, Env: EnvIdleReadTimeout, Err: err}
		}
		if req.Context().Err() == nil && errors.As(err, &ne) && ne.Timeout() && !isStall(err) {
			te := &TimeoutError{Registry: req.URL.Host, What: requestWhat(req), Waiting: "response headers",
				Limit: t.t.ResponseHeader, Env: EnvResponseHeaderTimeout, Err: err}
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Op == "dial" || strings.Contains(err.Error(), "TLS handshake timeout") {
				te.Waiting, te.Limit, te.Env = "connection", t.t.Connect, EnvConnectTimeout
			}
			err = te
		}
		return nil, err
	}
	b := &idleBody{rc: resp.Body, cancel: cancel, parent: req.Context(),
		err: &TimeoutError{Registry: req.URL.Host, What: requestWhat(req), Waiting: "data",
			Limit: t.t.IdleRead, Env: EnvIdleReadTimeout}}
	b.timer = time.AfterFunc(t.t.IdleRead, b.fire)
	b.timer.Stop()
	resp.Body = b
	return resp, nil
}

// idleBody fails a read that waits longer than the idle timeout for a
// byte, by cancelling the request's context (which unblocks the read on
// HTTP/1 and HTTP/2 alike). Time spent between reads, the caller's own
// work, does not count.
type idleBody struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	parent context.Context
	timer  *time.Timer
	err    *TimeoutError

	mu    sync.Mutex
	fired bool
}

func (b *idleBody) fire() {
	b.mu.Lock()
	b.fired = true
	b.mu.Unlock()
	b.cancel()
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.err.Limit)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && b.parent.Err() == nil {
		b.mu.Lock()
		fired := b.fired
		b.mu.Unlock()
		if fired {
			e := *b.err
			e.Err = err
			return n, &e
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}

// idleUpload bounds the silence of a request body's transfer: between two
// reads of the body the transport is writing the last chunk to the
// connection, and a registry that stopped reading blocks that write for
// ever. The time spent inside a read (the caller's source, say a slow
// disk) does not count.
type idleUpload struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	timer  *time.Timer
	limit  time.Duration

	mu    sync.Mutex
	fired bool
	done  bool
}

func (u *idleUpload) fire() {
	u.mu.Lock()
	u.fired = !u.done
	u.mu.Unlock()
	if u.fired {
		u.cancel()
	}
}

func (u *idleUpload) stalled() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.fired
}

func (u *idleUpload) Read(p []byte) (int, error) {
	u.timer.Stop()
	n, err := u.rc.Read(p)
	if err == nil {
		u.timer.Reset(u.limit) // until the transport asks for more
	} else {
		u.mu.Lock()
		u.done = true
		u.mu.Unlock()
	}
	return n, err
}

func (u *idleUpload) Close() error {
	u.timer.Stop()
	u.mu.Lock()
	u.done = true
	u.mu.Unlock()
	return u.rc.Close()
}
