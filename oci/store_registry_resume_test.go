package oci

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// blobServer is a minimal registry serving one blob. The first cuts
// responses stop after half the body (the connection is dropped with the
// declared Content-Length unmet). ignoreRange makes it answer every GET
// with the whole blob, as some storage backends do.
type blobServer struct {
	blob        testBlob
	cuts        int
	ignoreRange bool
	badRange    bool

	mu     sync.Mutex
	gets   int
	ranges []string
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/blobs/"+b.blob.d.String()) {
		http.NotFound(w, r)
		return
	}
	b.mu.Lock()
	b.gets++
	b.ranges = append(b.ranges, r.Header.Get("Range"))
	cut := b.cuts > 0
	if cut {
		b.cuts--
	}
	b.mu.Unlock()
	data, start := b.blob.data, 0
	if rg := r.Header.Get("Range"); rg != "" && !b.ignoreRange {
		fmt.Sscanf(rg, "bytes=%d-", &start)
		if b.badRange {
			start++ // a broken server answering the wrong range
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		w.Header().Set("Content-Length", fmt.Sprint(len(data)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	}
	body := data[start:]
	if cut {
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	w.Write(body)
}

func readThrough(t *testing.T, bs *blobServer) ([]byte, error) {
	t.Helper()
	srv := httptest.NewServer(bs)
	srv.Config.ErrorLog = nil
	defer srv.Close()
	s := openTestRegistry(t, strings.TrimPrefix(srv.URL, "http://"), "x", StoreOptions{})
	rc, err := s.ReadBlob(context.Background(), bs.blob.d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestResumeWithRange(t *testing.T) {
	bs := &blobServer{blob: randomBlob(t, 256<<10), cuts: 3}
	got, err := readThrough(t, bs)
	if err != nil || !bytes.Equal(got, bs.blob.data) {
		t.Fatalf("read = %d bytes, %v; want the blob", len(got), err)
	}
	if bs.gets != 4 {
		t.Errorf("%d GETs, want 4 (one + 3 resumes)", bs.gets)
	}
	for i, rg := range bs.ranges[1:] {
		if !strings.HasPrefix(rg, "bytes=") {
			t.Errorf("resume %d had no Range header", i+1)
		}
	}
}

func TestResumeWhenRangeIgnored(t *testing.T) {
	bs := &blobServer{blob: randomBlob(t, 256<<10), cuts: 2, ignoreRange: true}
	got, err := readThrough(t, bs)
	if err != nil || !bytes.Equal(got, bs.blob.data) {
		t.Fatalf("read = %d bytes, %v; want the blob", len(got), err)
	}
	if bs.gets != 3 {
		t.Errorf("%d GETs, want 3", bs.gets)
	}
}

func TestResumeWrongRangeIsAnError(t *testing.T) {
	bs := &blobServer{blob: randomBlob(t, 64<<10), cuts: 1, badRange: true}
	_, err := readThrough(t, bs)
	if err == nil || !strings.Contains(err.Error(), "Content-Range") {
		t.Fatalf("read with a wrong Content-Range = %v, want an error about it", err)
	}
}
