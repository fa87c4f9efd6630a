package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// layoutServer is a loopback registry (the read side of the distribution
// API) serving an OCI layout, with counters and the stalls a registry or
// proxy really produces: headers and some bytes, then silence until the
// client gives up. It stands in for docker-registry where a test must
// control and count every byte of a blob download.
type layoutServer struct {
	dir string
	srv *httptest.Server

	mu sync.Mutex
	// stallBlob's GETs stall: after stallAfter body bytes, or before the
	// headers when stallAfter < 0.
	stallBlob  string
	stallAfter int64
	// counts per blob digest
	gets  map[string]int
	bytes map[string]int64
}

func newLayoutServer(t *testing.T, dir string) *layoutServer {
	s := &layoutServer{dir: dir, gets: map[string]int{}, bytes: map[string]int64{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

// host is the registry's host:port.
func (s *layoutServer) host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

func (s *layoutServer) stall(digest string, after int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stallBlob, s.stallAfter = digest, after
}

func (s *layoutServer) counts(digest string) (gets int, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[digest], s.bytes[digest]
}

func (s *layoutServer) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		w.Write([]byte("{}"))
	case strings.Contains(p, "/manifests/"):
		ref := p[strings.LastIndex(p, "/")+1:]
		digest := ref
		if !strings.HasPrefix(ref, "sha256:") {
			digest = s.tagDigest(ref)
		}
		b, err := os.ReadFile(s.blobPath(digest))
		if digest == "" || err != nil {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", digest)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	case strings.Contains(p, "/blobs/sha256:"):
		digest := p[strings.LastIndex(p, "/")+1:]
		f, err := os.Open(s.blobPath(digest))
		if err != nil {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		defer f.Close()
		s.mu.Lock()
		if r.Method == http.MethodGet {
			s.gets[digest]++
		}
		stall, after := digest == s.stallBlob && r.Method == http.MethodGet, s.stallAfter
		s.mu.Unlock()
		if stall && after < 0 {
			<-r.Context().Done() // never answer
			return
		}
		cw := &countingWriter{ResponseWriter: w, s: s, digest: digest, left: -1, ctx: r.Context().Done()}
		if stall {
			cw.left = after
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", digest)
		http.ServeContent(cw, r, "", time.Time{}, f)
	default:
		http.Error(w, `{"errors":[{"code":"UNSUPPORTED"}]}`, http.StatusNotFound)
	}
}

func (s *layoutServer) blobPath(digest string) string {
	return filepath.Join(s.dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// tagDigest looks tag up in the layout's index.json.
func (s *layoutServer) tagDigest(tag string) string {
	b, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if err != nil {
		return ""
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	json.Unmarshal(b, &idx)
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == tag {
			return m.Digest
		}
	}
	return ""
}

// countingWriter counts the body bytes sent and, with left ≥ 0, stalls
// once left bytes are out: it flushes them and blocks until the client
// goes away.
type countingWriter struct {
	http.ResponseWriter
	s      *layoutServer
	digest string
	left   int64
	ctx    <-chan struct{}
}

func (c *countingWriter) Write(p []byte) (int, error) {
	stallNow := false
	if c.left >= 0 && int64(len(p)) >= c.left {
		p, stallNow = p[:c.left], true
	}
	n, err := c.ResponseWriter.Write(p)
	c.s.mu.Lock()
	c.s.bytes[c.digest] += int64(n)
	c.s.mu.Unlock()
	if c.left >= 0 {
		c.left -= int64(n)
	}
	if stallNow {
		c.ResponseWriter.(http.Flusher).Flush()
		<-c.ctx
		return n, http.ErrAbortHandler
	}
	return n, err
}
