package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// faultProxy is a loopback reverse proxy in front of the real registry that
// injects the failures registries and networks really produce: 503s, blob
// downloads cut mid-stream, uploads cut mid-body.
type faultProxy struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// budgets: how many faults of each kind remain (-1: forever)
	every503  int // inject a 503 on every Nth request (0: never)
	budget503 int
	patch503  int   // PATCH requests to answer 503 (first ones)
	cutGets   int   // blob GETs to cut
	cutAt     int64 // bytes of a cut GET let through
	cutPuts   int   // upload bodies to cut
	// counts
	requests, injected503, didCutGets, didCutPuts, rangeGets int
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	p := &faultProxy{t: t}
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // flush each write, so a cut response has sent part of its body
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ErrorHandler = func(http.ResponseWriter, *http.Request, error) {
		panic(http.ErrAbortHandler) // a cut upload: reset the client's connection
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || !strings.Contains(resp.Request.URL.Path, "/blobs/") || resp.StatusCode/100 != 2 {
			return nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cutGets != 0 {
			if p.cutGets > 0 {
				p.cutGets--
			}
			p.didCutGets++
			resp.Body = &proxyCutReader{r: resp.Body, left: p.cutAt}
		}
		return nil
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests++
		n := p.requests
		if r.Header.Get("Range") != "" {
			p.rangeGets++
		}
		// Periodic 503s spare PATCH, which only a whole new upload can
		// retry: patch503 injects those, counted, so one blob cannot be
		// unlucky enough to exhaust its upload attempts on alignment.
		isPatch := r.Method == http.MethodPatch
		inject := p.every503 > 0 && n%p.every503 == 0 && p.budget503 != 0 && (!isPatch || p.budget503 < 0)
		if isPatch && p.patch503 > 0 {
			p.patch503--
			inject = true
		}
		if inject {
			if p.budget503 > 0 && !isPatch {
				p.budget503--
			}
			p.injected503++
		}
		cutPut := !inject && (r.Method == http.MethodPatch || r.Method == http.MethodPut) && r.ContentLength != 0 &&
			strings.Contains(r.URL.Path, "/blobs/uploads/") && p.cutPuts != 0
		if cutPut {
			if p.cutPuts > 0 {
				p.cutPuts--
			}
			p.didCutPuts++
		}
		p.mu.Unlock()
		if inject {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if cutPut {
			// Forward part of the body to the registry, then drop
			// both connections: the registry holds a partial upload
			// and the client sees a reset mid-upload.
			r.Body = &proxyCutReader{r: r.Body, left: 1000}
		}
		rp.ServeHTTP(w, r)
	}))
	// Silence the server's log of the aborted handlers.
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

type proxyCutReader struct {
	r    io.ReadCloser
	left int64
}

var errProxyCut = errors.New("fault proxy: cut")

func (c *proxyCutReader) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errProxyCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *proxyCutReader) Close() error { return c.r.Close() }

// TestRegistryRetriesThroughFaults: with 503s sprinkled over every kind of
// request, the first uploads cut mid-body and the first downloads cut
// mid-stream, a push and a read-back still succeed, byte for byte.
func TestRegistryRetriesThroughFaults(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	p := newFaultProxy(t, reg.Host)
	p.every503, p.budget503, p.patch503 = 3, 12, 1
	p.cutPuts = 2
	p.cutGets, p.cutAt = 3, 100<<10

	s := openTestRegistry(t, p.host(), "cache/faults", StoreOptions{})
	big := randomBlob(t, 1<<20)
	a := newTestArtifact(t, big, randomBlob(t, 3000))
	d, _ := a.push(t, s, "v1")

	// Read back through a fresh store (a new pull).
	r := openTestRegistry(t, p.host(), "cache/faults", StoreOptions{})
	_, mb, md, err := r.GetManifest(context.Background(), "v1")
	if err != nil || md != d || !bytes.Equal(mb, a.manifest) {
		t.Fatalf("GetManifest through faults = %s, %v", md, err)
	}
	for _, b := range append([]testBlob{a.config}, a.layers...) {
		if got := readAll(t, r, b.d); !bytes.Equal(got, b.data) {
			t.Fatalf("blob %s differs after faults", b.d)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.injected503 != 13 || p.didCutPuts != 2 || p.didCutGets != 3 {
		t.Errorf("faults injected: %d 503s, %d cut uploads, %d cut downloads; want 13, 2, 3 (all survived)", p.injected503, p.didCutPuts, p.didCutGets)
	}
	if p.rangeGets == 0 {
		t.Error("no download was resumed with a Range request")
	}
	// The registry holds each blob once: cut uploads were restarted, not
	// duplicated or left half-done.
	if got := len(reg.Requests(t, "PUT", "/blobs/uploads/")); got != 3 {
		t.Errorf("registry completed %d blob uploads, want 3", got)
	}
}

// TestRegistryFaultsNeverStop: when the registry answers 503 forever, the
// error names the registry and the reason, after a capped number of
// attempts (no retry amplification across layers).
func TestRegistryFaultsNeverStop(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	p := newFaultProxy(t, reg.Host)
	p.every503, p.budget503 = 1, -1

	s := openTestRegistry(t, p.host(), "cache/down", StoreOptions{})
	b := randomBlob(t, 1000)
	_, err := s.WriteBlob(context.Background(), b.d, 1000, b.opener(nil))
	if err == nil {
		t.Fatal("WriteBlob succeeded against a registry answering 503")
	}
	for _, want := range []string{"pushing blob to " + p.host() + "/cache/down", "503"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	p.mu.Lock()
	n := p.requests
	p.mu.Unlock()
	if n != fastRetry.withDefaults().Attempts {
		t.Errorf("%d requests reached the registry, want %d (one request, retried to the cap)", n, fastRetry.withDefaults().Attempts)
	}
}

// TestRegistryDownloadCutForever: a link that cuts every download gives up
// with a clear error rather than looping.
func TestRegistryDownloadCutForever(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	s := openTestRegistry(t, reg.Host, "cache/cut", StoreOptions{})
	big := randomBlob(t, 1<<20)
	newTestArtifact(t, big).push(t, s, "v1")

	p := newFaultProxy(t, reg.Host)
	p.cutGets, p.cutAt = -1, 10<<10
	r := openTestRegistry(t, p.host(), "cache/cut", StoreOptions{})
	rc, err := r.ReadBlob(context.Background(), big.d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err == nil {
		t.Fatalf("read %d bytes of a blob whose every download is cut, no error", n)
	}
	for _, want := range []string{"pulling blob from " + p.host() + "/cache/cut", "gave up after"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.didCutGets != maxBlobResumes+1 {
		t.Errorf("%d downloads were started, want %d (first + %d resumes)", p.didCutGets, maxBlobResumes+1, maxBlobResumes)
	}
}

// TestRegistryRerunAfterFailedPush: a push that fails part-way (every upload
// of the last blob refused) leaves the earlier blobs in the registry; the
// re-run skips them by HEAD and uploads only what is missing.
func TestRegistryRerunAfterFailedPush(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	p := newFaultProxy(t, reg.Host)
	a := newTestArtifact(t, randomBlob(t, 50<<10), randomBlob(t, 60<<10))
	blobs := append([]testBlob{a.config}, a.layers...)

	s := openTestRegistry(t, p.host(), "cache/rerun", StoreOptions{})
	ctx := context.Background()
	for _, b := range blobs[:2] {
		if _, err := s.WriteBlob(ctx, b.d, int64(len(b.data)), b.opener(nil)); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	p.patch503 = 1 << 30 // the registry now refuses every upload body
	p.mu.Unlock()
	last := blobs[2]
	_, err := s.WriteBlob(ctx, last.d, int64(len(last.data)), last.opener(nil))
	if err == nil || !strings.Contains(err.Error(), p.host()+"/cache/rerun") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("WriteBlob with uploads refused = %v, want an error naming the registry and the 503", err)
	}
	p.mu.Lock()
	p.patch503 = 0
	p.mu.Unlock()

	// The re-run: a new store, as a new process would have.
	before := len(reg.Requests(t, "PUT", "/blobs/uploads/"))
	r := openTestRegistry(t, p.host(), "cache/rerun", StoreOptions{})
	d, skipped := a.push(t, r, "v1")
	if skipped != 2 {
		t.Errorf("re-run skipped %d blobs, want 2 (those uploaded before the failure)", skipped)
	}
	if got := len(reg.Requests(t, "PUT", "/blobs/uploads/")) - before; got != 1 {
		t.Errorf("re-run completed %d uploads, want 1", got)
	}
	if _, _, got, err := r.GetManifest(ctx, "v1"); err != nil || got != d {
		t.Errorf("manifest after re-run: %s, %v", got, err)
	}
}
