package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Retry defaults. Registries fail transiently in two ways that matter here:
// a load balancer or registry restart answering 502/503/504 (or 429 when a
// hosted registry rate-limits a CI fleet), and a connection reset mid-way by
// a proxy. Both clear within seconds.
const (
	// defaultRetryAttempts caps attempts per request (the first included):
	// five attempts with the delays below span about 4 s, enough to ride
	// out a registry restart, while a registry that is really down still
	// fails within seconds rather than stalling a build.
	defaultRetryAttempts = 5
	// defaultRetryBaseDelay is the first back-off: long enough that a
	// restarting registry is not hammered, short enough that one dropped
	// connection costs a build almost nothing.
	defaultRetryBaseDelay = 250 * time.Millisecond
	// defaultRetryMaxDelay caps a single back-off (doubling from the base)
	// so later attempts do not wait longer than the outage they ride out.
	defaultRetryMaxDelay = 4 * time.Second
	// maxRetryAfter caps a server's Retry-After: a rate limiter asking for
	// minutes would otherwise stall a build silently; past this we give up
	// and report the 429 instead.
	maxRetryAfter = 30 * time.Second
	// drainLimit bounds how much of a failed response body is read before
	// closing it, so the connection can be reused without reading a large
	// error page.
	drainLimit = 64 << 10
)

// RetryPolicy configures retries of transient registry failures. The zero
// value means the defaults above.
type RetryPolicy struct {
	// Attempts caps the attempts per request, the first included.
	Attempts int
	// BaseDelay is the first back-off; each further one doubles, capped
	// at MaxDelay, with jitter.
	BaseDelay time.Duration
	// MaxDelay caps one back-off.
	MaxDelay time.Duration
	// Stalls caps the attempts per request (or downloads of one blob)
	// that may end in a timeout (see Timeouts): each costs a whole
	// timeout, so a stalled registry gets fewer chances.
	Stalls int
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = defaultRetryAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = defaultRetryBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = defaultRetryMaxDelay
	}
	if p.Stalls <= 0 {
		p.Stalls = defaultStallAttempts
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p
}

// delay returns the back-off before attempt n+1 (n ≥ 1 attempts done):
// exponential with "equal jitter" (half fixed, half random), so parallel
// layer transfers that failed together do not retry in lockstep.
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + rand.N(half+1)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryableStatus reports whether a registry response is worth retrying:
// 408 and 429 (come back later) and 5xx except 501 and 505, which will not
// change on a retry.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return code >= 500 && code <= 599
}

// retryableErr reports whether a transport error is a transient network
// failure: a reset or aborted connection, a connection closed mid-response,
// or a timeout. Refused connections, DNS and TLS failures are not: they do
// not heal in seconds, and retrying them only delays a clear error.
func retryableErr(err error) bool {
	var ex *exhaustedError
	if err == nil || errors.As(err, &ex) {
		return false
	}
	// Before the context checks: a stall is reported by cancelling the
	// request, and net/http's header timeout matches DeadlineExceeded.
	if isStall(err) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		// The peer closed the connection while we were still writing
		// the request body: the same reset, seen from the writer.
		errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exhaustedError is a transient failure that was already retried as often
// as the policy allows: no layer above retries it again (issue 11, finding
// 7: retries at two levels multiplied into minutes of re-downloads).
type exhaustedError struct{ err error }

func (e *exhaustedError) Error() string { return e.err.Error() }
func (e *exhaustedError) Unwrap() error { return e.err }

// streamAttempt is attached to a context by WriteBlob so the retry
// transport can tell it that a request whose body it cannot replay (a blob
// upload streaming from the caller's reader) failed transiently: WriteBlob
// then restarts the upload from open(). Requests with replayable bodies are
// retried by the transport itself, so nothing is retried at two levels.
type streamAttempt struct {
	failed atomic.Bool // a non-replayable request failed transiently
	local  atomic.Bool // the caller's blob source failed: do not retry
}

type streamAttemptKey struct{}

func withStreamAttempt(ctx context.Context, a *streamAttempt) context.Context {
	return context.WithValue(ctx, streamAttemptKey{}, a)
}

// retryTransport retries transient failures with exponential back-off.
type retryTransport struct {
	inner  http.RoundTripper
	policy RetryPolicy
	log    *slog.Logger
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// PATCH appends to an upload session: replaying it after a cut that
	// delivered part of the body would duplicate bytes in the session
	// (ggcr sets GetBody on it all the same). WriteBlob restarts such an
	// upload in a new session instead.
	replayable := req.Method != http.MethodPatch && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
	stalls := 0
	for n := 1; ; n++ {
		if n > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		resp, err := t.inner.RoundTrip(req)
		transient := retryableErr(err) || err == nil && retryableStatus(resp.StatusCode)
		if !transient {
			return resp, err
		}
		if !replayable {
			if a, ok := req.Context().Value(streamAttemptKey{}).(*streamAttempt); ok {
				a.failed.Store(true)
			}
			return resp, err
		}
		if isStall(err) {
			stalls++
		}
		if n >= t.policy.Attempts || stalls >= t.policy.Stalls {
			if err != nil {
				// exhausted: the layer retry must not start over; gaveUp: the
				// message says how often it was tried.
				return nil, &exhaustedError{err: &gaveUpError{err: err, attempts: n}}
			}
			return resp, nil // the caller turns the status into an error
		}
		wait := t.policy.delay(n)
		what := ""
		if err != nil {
			what = err.Error()
		} else {
			what = resp.Status
			if ra := retryAfter(resp); ra > 0 {
				if ra > maxRetryAfter {
					return resp, nil
				}
				wait = max(wait, ra)
			}
			io.CopyN(io.Discard, resp.Body, drainLimit)
			resp.Body.Close()
		}
		t.log.Debug("retrying registry request", "method", req.Method, "url", req.URL.Redacted(),
			"attempt", n+1, "of", t.policy.Attempts, "after", wait, "reason", what)
		if err := sleepCtx(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}

// retryAfter parses a Retry-After header given in seconds (registries do
// not send the date form).
func retryAfter(resp *http.Response) time.Duration {
	s := resp.Header.Get("Retry-After")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// PlainHTTPError is returned, before any connection is made, for a plain
// HTTP request to a host the network policy does not allow.
type PlainHTTPError struct {
	// Host is the host[:port] the request was for.
	Host string
}

func (e *PlainHTTPError) Error() string {
	return fmt.Sprintf("refusing plain HTTP to %s: only loopback registries (127.0.0.0/8, ::1, localhost) are reached without TLS; pass --insecure to allow it", e.Host)
}

// IsLoopbackHost reports whether host (a hostname or IP, no port) is
// loopback: "localhost", 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// policyTransport enforces melcache's plain-HTTP rule on every request,
// redirects included, before it reaches the network. ggcr alone would also
// speak plain HTTP to RFC 1918 addresses and *.local names, where a
// man-in-the-middle could swap a cache (and so build outputs) unnoticed.
type policyTransport struct {
	inner    http.RoundTripper
	insecure bool
}

func (t *policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !t.insecure && !IsLoopbackHost(req.URL.Hostname()) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &PlainHTTPError{Host: req.URL.Host}
	}
	return t.inner.RoundTrip(req)
}

// Connection tuning for the base transport, as ggcr's remote.DefaultTransport
// (the timeouts are in timeouts.go).
const (
	// idleConnTimeout keeps connections for the next layer of a push.
	idleConnTimeout = 90 * time.Second
	// maxIdleConnsPerHost lets parallel layer transfers (--jobs) reuse
	// their connections instead of reconnecting per blob.
	maxIdleConnsPerHost = 32
)

// newBaseTransport returns the HTTP transport under the policy and retry
// layers. insecure also skips TLS verification, as crane --insecure does:
// the user has opted out of transport security for this registry. caCert,
// when set, is a PEM file of CAs trusted on top of the system roots; to
// bounds connection setup and the wait for response headers.
func newBaseTransport(insecure bool, caCert string, to Timeouts) (http.RoundTripper, error) {
	to = to.withDefaults()
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: to.Connect, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: to.ResponseHeader,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   to.Connect,
		ExpectContinueTimeout: time.Second,
	}
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --insecure
	} else if caCert != "" {
		pool, err := certPool(caCert)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return tr, nil
}

// certPool returns the system roots plus the PEM certificates in file.
func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in the file", file)
	}
	return pool, nil
}

// newTransport stacks policy, retries and timeouts over base (nil: a fresh
// HTTP transport): policy first, so a refused request is never retried, and
// timeouts right above base, so each attempt gets its own limits.
func newTransport(base http.RoundTripper, insecure bool, p RetryPolicy, to Timeouts, log *slog.Logger) http.RoundTripper {
	to = to.withDefaults()
	if base == nil {
		base, _ = newBaseTransport(insecure, "", to) // no CA file: cannot fail
	}
	return &policyTransport{
		insecure: insecure,
		inner: &retryTransport{inner: &timeoutTransport{inner: base, t: to},
			policy: p.withDefaults(), log: log},
	}
}
