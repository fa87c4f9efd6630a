package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// stallServer serves one blob and stalls its first stalls GETs: after
// after bytes of the body, or before the headers when after < 0, it sends
// nothing more until the client gives up.
type stallServer struct {
	blob   testBlob
	stalls int
	after  int

	mu   sync.Mutex
	gets int
}

func (s *stallServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	s.mu.Lock()
	s.gets++
	stall := s.stalls != 0
	if s.stalls > 0 {
		s.stalls--
	}
	s.mu.Unlock()
	if stall && s.after < 0 {
		<-r.Context().Done()
		return
	}
	data, start := s.blob.data, 0
	if rg := r.Header.Get("Range"); rg != "" {
		fmt.Sscanf(rg, "bytes=%d-", &start)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		w.Header().Set("Content-Length", fmt.Sprint(len(data)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	}
	body := data[start:]
	if stall {
		w.Write(body[:s.after])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	w.Write(body)
}

func readStalled(t *testing.T, ss *stallServer, to Timeouts) ([]byte, string, error) {
	t.Helper()
	srv := httptest.NewServer(ss)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	host := strings.TrimPrefix(srv.URL, "http://")
	s := openTestRegistry(t, host, "x", StoreOptions{Timeouts: to, Retry: RetryPolicy{BaseDelay: time.Millisecond}})
	rc, err := s.ReadBlob(context.Background(), ss.blob.d)
	if err != nil {
		return nil, host, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, host, err
}

// TestStallIdleRead (issue 11, finding 6): a body that goes silent fails
// the read after the idle timeout (injected short), is resumed, and gives
// up after defaultStallAttempts stalls with an error naming the registry,
// the blob and the limit; one stall followed by data completes the blob.
func TestStallIdleRead(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	to := Timeouts{IdleRead: 200 * time.Millisecond}
	ss := &stallServer{blob: randomBlob(t, 256<<10), stalls: -1, after: 64 << 10}
	_, host, err := readStalled(t, ss, to)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Waiting != "data" || te.Limit != to.IdleRead {
		t.Fatalf("read of a stalling blob = %v, want an idle-read TimeoutError", err)
	}
	for _, want := range []string{"registry " + host + " stalled", "blob " + ss.blob.d.String(), "within 200ms", EnvIdleReadTimeout} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if ss.gets != defaultStallAttempts {
		t.Errorf("%d GETs, want %d", ss.gets, defaultStallAttempts)
	}

	ss = &stallServer{blob: randomBlob(t, 256<<10), stalls: 1, after: 64 << 10}
	got, _, err := readStalled(t, ss, to)
	if err != nil || !bytes.Equal(got, ss.blob.data) || ss.gets != 2 {
		t.Fatalf("one stall then data: %d bytes, %v, %d GETs; want the blob in 2 GETs", len(got), err, ss.gets)
	}
}

// TestStallResponseHeaders: a registry that never answers a request's
// headers fails it after defaultStallAttempts attempts, naming the limit.
func TestStallResponseHeaders(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	to := Timeouts{ResponseHeader: 200 * time.Millisecond}
	ss := &stallServer{blob: randomBlob(t, 16<<10), stalls: -1, after: -1}
	_, host, err := readStalled(t, ss, to)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Waiting != "response headers" || te.Limit != to.ResponseHeader {
		t.Fatalf("read of a blob whose headers never come = %v, want a header TimeoutError", err)
	}
	if !strings.Contains(err.Error(), "registry "+host+" stalled") || !strings.Contains(err.Error(), EnvResponseHeaderTimeout) {
		t.Errorf("error %q does not name the registry and the variable", err)
	}
	if ss.gets != defaultStallAttempts {
		t.Errorf("%d GETs, want %d", ss.gets, defaultStallAttempts)
	}
}

func TestTimeoutsFromEnv(t *testing.T) {
	env := map[string]string{EnvIdleReadTimeout: "2m"}
	to, err := TimeoutsFromEnv(func(k string) string { return env[k] })
	if err != nil || to.IdleRead != 2*time.Minute || to.Connect != DefaultConnectTimeout || to.ResponseHeader != DefaultResponseHeaderTimeout {
		t.Fatalf("TimeoutsFromEnv = %+v, %v", to, err)
	}
	for _, bad := range []string{"soon", "0s", "-1s"} {
		env[EnvConnectTimeout] = bad
		if _, err := TimeoutsFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), EnvConnectTimeout) {
			t.Errorf("%s=%s: %v, want an error naming it", EnvConnectTimeout, bad, err)
		}
	}
}

// uploadStallServer lacks every blob and takes uploads whose PATCH bodies
// it stops reading after 64 KB: a registry that stalls mid-upload.
type uploadStallServer struct {
	quit chan struct{} // closed when the test ends

	mu      sync.Mutex
	patches int
}

func (u *uploadStallServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v2/":
	case r.Method == http.MethodHead:
		http.NotFound(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/"):
		w.Header().Set("Location", "/v2/x/blobs/uploads/u1")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPatch:
		u.mu.Lock()
		u.patches++
		u.mu.Unlock()
		io.CopyN(io.Discard, r.Body, 64<<10)
		// The server cancels no context while a body is unread.
		<-u.quit
	default:
		http.Error(w, "unexpected", http.StatusBadRequest)
	}
}

// TestStallUpload: a registry that stops reading an upload's body fails
// the push after defaultStallAttempts stalled uploads, naming the limit,
// where the write would otherwise block for ever.
func TestStallUpload(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	us := &uploadStallServer{quit: make(chan struct{})}
	srv := httptest.NewServer(us)
	t.Cleanup(func() { close(us.quit); srv.CloseClientConnections(); srv.Close() })
	host := strings.TrimPrefix(srv.URL, "http://")
	s := openTestRegistry(t, host, "x", StoreOptions{Timeouts: Timeouts{IdleRead: 200 * time.Millisecond},
		Retry: RetryPolicy{BaseDelay: time.Millisecond}})
	// Larger than the loopback socket buffers, so the writes block.
	b := randomBlob(t, 64<<20)
	_, err := s.WriteBlob(context.Background(), b.d, int64(len(b.data)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b.data)), nil
	})
	var te *TimeoutError
	if !errors.As(err, &te) || te.Waiting != "upload progress" || !strings.Contains(err.Error(), "registry "+host+" stalled") {
		t.Fatalf("push to a registry that stopped reading = %v, want an upload TimeoutError naming it", err)
	}
	if us.patches != defaultStallAttempts {
		t.Errorf("%d uploads, want %d", us.patches, defaultStallAttempts)
	}
}
