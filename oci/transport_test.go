package oci

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var errNotConnected = errors.New("recorded, not connected")

// recordingTransport records every request that reaches it. Requests to
// loopback go to inner when set; anything else is answered with
// errNotConnected, so tests never send traffic off the machine.
type recordingTransport struct {
	inner http.RoundTripper
	mu    sync.Mutex
	seen  []string // "scheme://host"
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req.URL.Scheme+"://"+req.URL.Host)
	r.mu.Unlock()
	if r.inner != nil && IsLoopbackHost(req.URL.Hostname()) {
		return r.inner.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, errNotConnected
}

func (r *recordingTransport) attempts(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.seen {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func TestIsLoopbackHost(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "[::1]": true,
		"10.0.0.1": false, "192.168.1.1": false, "172.16.0.1": false, "registry.local": false, "registry.localhost": false,
		"localhost.example.com": false, "128.0.0.1": false, "::2": false, "": false, "ghcr.io": false,
	} {
		if got := IsLoopbackHost(h); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", h, got, want)
		}
	}
}

// TestPlainHTTPPolicy: ggcr would speak plain HTTP to private ranges and
// *.local; we refuse before any plain-HTTP request leaves, unless the host
// is loopback or --insecure was given.
func TestPlainHTTPPolicy(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		host      string
		insecure  bool
		wantPlain bool // a plain-HTTP attempt reaches the network layer
	}{
		{"10.1.2.3:5000", false, false},
		{"192.168.7.8:5000", false, false},
		{"172.16.0.9", false, false},
		{"registry.localhost:5000", false, false},
		{"10.1.2.3:5000", true, true},
		{"registry.localhost:5000", true, true},
		{"registry.example:5000", true, true},
		{"127.0.0.1:5000", false, true},
		{"127.8.9.10:5000", false, true},
		{"localhost:5000", false, true},
		{"[::1]:5000", false, true},
	} {
		rec := &recordingTransport{}
		ref, err := ParseRef(c.host+"/cache", RefOptions{Insecure: c.insecure})
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := OpenStore(ctx, ref, StoreOptions{Transport: rec, Retry: fastRetry, Keychain: authn.NewMultiKeychain()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Tags(ctx)
		if err == nil {
			t.Fatalf("%s: Tags succeeded through a recorder", c.host)
		}
		plain := rec.attempts("http://" + c.host)
		if c.wantPlain != (plain > 0) {
			t.Errorf("%s insecure=%v: %d plain-HTTP attempts reached the network, want any=%v (seen %v)", c.host, c.insecure, plain, c.wantPlain, rec.seen)
		}
		var pe *PlainHTTPError
		if refused := errors.As(err, &pe); refused == c.wantPlain {
			t.Errorf("%s insecure=%v: refused=%v, err=%v", c.host, c.insecure, refused, err)
		}
		if !c.wantPlain {
			msg := err.Error()
			for _, want := range []string{"listing tags of " + c.host + "/cache", "refusing plain HTTP to " + c.host, "--insecure"} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s: error %q lacks %q", c.host, msg, want)
				}
			}
		}
	}
}

// TestPlainHTTPRedirectRefused: a loopback registry redirecting a blob to a
// plain-HTTP private address is refused at the redirect, before connecting.
func TestPlainHTTPRedirectRefused(t *testing.T) {
	b := randomBlob(t, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, "http://10.9.9.9/storage/"+b.d.Hex, http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusOK) // /v2/: no auth
	}))
	defer srv.Close()
	rec := &recordingTransport{inner: http.DefaultTransport}
	s := openTestRegistry(t, strings.TrimPrefix(srv.URL, "http://"), "x", StoreOptions{Transport: rec})
	_, err := s.ReadBlob(context.Background(), b.d)
	var pe *PlainHTTPError
	if !errors.As(err, &pe) || pe.Host != "10.9.9.9" {
		t.Fatalf("ReadBlob through a redirect to plain HTTP = %v, want a PlainHTTPError for 10.9.9.9", err)
	}
	if n := rec.attempts("http://10.9.9.9"); n != 0 {
		t.Errorf("%d requests to 10.9.9.9 reached the network layer", n)
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	p := RetryPolicy{}.withDefaults()
	if p.Attempts != defaultRetryAttempts {
		t.Errorf("Attempts = %d", p.Attempts)
	}
	for n := 1; n <= 10; n++ {
		want := min(defaultRetryBaseDelay<<(n-1), defaultRetryMaxDelay)
		for range 20 {
			d := p.delay(n)
			if d < want/2 || d > want {
				t.Fatalf("delay(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// scriptedTransport answers from a list of statuses, then 200.
type scriptedTransport struct {
	mu       sync.Mutex
	statuses []int
	calls    int
	bodies   []string
}

func (s *scriptedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		s.bodies = append(s.bodies, string(b))
	}
	code := http.StatusOK
	if len(s.statuses) > 0 {
		code, s.statuses = s.statuses[0], s.statuses[1:]
	}
	if code < 0 {
		return nil, errSyntheticReset
	}
	return &http.Response{StatusCode: code, Status: http.StatusText(code), Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
}

var errSyntheticReset = &resetError{}

type resetError struct{}

func (*resetError) Error() string   { return "connection reset by peer (synthetic)" }
func (*resetError) Timeout() bool   { return true } // classified transient like a net timeout
func (*resetError) Temporary() bool { return true }

func TestRetryTransport(t *testing.T) {
	for _, c := range []struct {
		name      string
		statuses  []int
		body      bool
		wantCalls int
		wantCode  int
	}{
		{"503 then ok", []int{503, 503}, false, 3, 200},
		{"429 then ok", []int{429}, false, 2, 200},
		{"reset then ok", []int{-1}, false, 2, 200},
		{"404 not retried", []int{404}, false, 1, 404},
		{"501 not retried", []int{501}, false, 1, 501},
		{"replayable body retried", []int{502}, true, 2, 200},
		{"always 503 gives up", []int{503, 503, 503, 503, 503, 503, 503}, false, 5, 503},
	} {
		st := &scriptedTransport{statuses: c.statuses}
		tr := &retryTransport{inner: st, policy: fastRetry.withDefaults(), log: StoreOptions{}.logger()}
		var body io.Reader
		if c.body {
			body = strings.NewReader("manifest")
		}
		req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:1/v2/x/manifests/t", body)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if st.calls != c.wantCalls || resp.StatusCode != c.wantCode {
			t.Errorf("%s: %d calls, status %d; want %d, %d", c.name, st.calls, resp.StatusCode, c.wantCalls, c.wantCode)
		}
		if c.body {
			for _, b := range st.bodies {
				if b != "manifest" {
					t.Errorf("%s: retried request had body %q", c.name, b)
				}
			}
		}
	}
	// A streaming body is not replayed: the attempt is flagged for the
	// caller (WriteBlob) to restart.
	st := &scriptedTransport{statuses: []int{503}}
	tr := &retryTransport{inner: st, policy: fastRetry.withDefaults(), log: StoreOptions{}.logger()}
	a := &streamAttempt{}
	req, _ := http.NewRequestWithContext(withStreamAttempt(context.Background(), a), http.MethodPatch, "http://127.0.0.1:1/x", io.NopCloser(strings.NewReader("blob")))
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 503 || st.calls != 1 || !a.failed.Load() {
		t.Errorf("streaming body: status %v err %v calls %d flagged %v; want 503, 1 call, flagged", resp.StatusCode, err, st.calls, a.failed.Load())
	}
	// Retry-After beyond the cap is not waited for.
	st = &scriptedTransport{statuses: []int{429}}
	tr = &retryTransport{inner: &retryAfterTransport{st, "3600"}, policy: fastRetry.withDefaults(), log: StoreOptions{}.logger()}
	req, _ = http.NewRequest(http.MethodGet, "http://127.0.0.1:1/x", nil)
	if resp, err := tr.RoundTrip(req); err != nil || resp.StatusCode != 429 || st.calls != 1 {
		t.Errorf("Retry-After 3600: %v, %v, %d calls; want the 429 at once", resp, err, st.calls)
	}
	_ = time.Second
	_ = v1.Hash{}
}

type retryAfterTransport struct {
	inner http.RoundTripper
	ra    string
}

func (t *retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if resp != nil {
		resp.Header.Set("Retry-After", t.ra)
	}
	return resp, err
}
