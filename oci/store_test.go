package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Media types of the test artifact (shaped like a melcache snapshot, but the
// snapshot format itself is not this file's business).
const (
	testManifestType = "application/vnd.oci.image.manifest.v1+json"
	testArtifactType = "application/vnd.melcache.test.v1"
	testConfigType   = "application/vnd.melcache.test.config.v1+json"
	testLayerType    = "application/vnd.oci.image.layer.v1.tar+zstd"
)

type testBlob struct {
	data []byte
	d    v1.Hash
}

func newTestBlob(t testing.TB, data []byte) testBlob {
	t.Helper()
	d, _, err := v1.SHA256(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return testBlob{data, d}
}

func randomBlob(t testing.TB, n int) testBlob {
	b := make([]byte, n)
	rand.Read(b)
	return newTestBlob(t, b)
}

// opener returns an open func over b that counts its calls.
func (b testBlob) opener(calls *atomic.Int32) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		if calls != nil {
			calls.Add(1)
		}
		return io.NopCloser(bytes.NewReader(b.data)), nil
	}
}

// testArtifact is a config blob, layer blobs and the manifest naming them.
type testArtifact struct {
	config   testBlob
	layers   []testBlob
	manifest []byte
}

func newTestArtifact(t testing.TB, layers ...testBlob) testArtifact {
	t.Helper()
	a := testArtifact{config: newTestBlob(t, []byte(`{"format":1}`)), layers: layers}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     testManifestType,
		"artifactType":  testArtifactType,
		"config":        v1.Descriptor{MediaType: testConfigType, Digest: a.config.d, Size: int64(len(a.config.data))},
		"annotations":   map[string]string{"org.opencontainers.image.created": "2026-11-24T00:00:00Z"},
	}
	var ls []v1.Descriptor
	for _, l := range layers {
		ls = append(ls, v1.Descriptor{MediaType: testLayerType, Digest: l.d, Size: int64(len(l.data))})
	}
	m["layers"] = ls
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	a.manifest = b
	return a
}

// push writes the artifact's blobs and manifest and returns how many blobs
// were skipped.
func (a testArtifact) push(t testing.TB, s Store, tag string) (v1.Hash, int) {
	t.Helper()
	ctx := context.Background()
	skipped := 0
	for _, b := range append([]testBlob{a.config}, a.layers...) {
		sk, err := s.WriteBlob(ctx, b.d, int64(len(b.data)), b.opener(nil))
		if err != nil {
			t.Fatalf("WriteBlob %s: %v", b.d, err)
		}
		if sk {
			skipped++
		}
	}
	d, err := s.PutManifest(ctx, tag, testManifestType, a.manifest)
	if err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	return d, skipped
}

func readAll(t testing.TB, s Store, d v1.Hash) []byte {
	t.Helper()
	rc, err := s.ReadBlob(context.Background(), d)
	if err != nil {
		t.Fatalf("ReadBlob %s: %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading blob %s: %v", d, err)
	}
	if got, _, _ := v1.SHA256(bytes.NewReader(b)); got != d {
		t.Fatalf("blob %s read back as %s", d, got)
	}
	return b
}

// testStoreContract runs the Store contract every implementation keeps:
// write, skip, read, tag, list, move a tag, read by digest, delete.
// toyDelete is for ggcr's in-memory registry, whose manifest delete leaves
// the tags pointing at it (distribution and our layouts drop them).
func testStoreContract(t *testing.T, s Store, toyDelete bool) {
	ctx := context.Background()
	l1, l2 := randomBlob(t, 300<<10), randomBlob(t, 1000)
	a := newTestArtifact(t, l1, l2)

	if ok, err := s.HasBlob(ctx, l1.d); err != nil || ok {
		t.Fatalf("HasBlob before write = %v, %v", ok, err)
	}
	d1, skipped := a.push(t, s, "one")
	if skipped != 0 {
		t.Errorf("first push skipped %d blobs, want 0", skipped)
	}
	if ok, err := s.HasBlob(ctx, l1.d); err != nil || !ok {
		t.Fatalf("HasBlob after write = %v, %v", ok, err)
	}
	// A second write of the same blobs is skipped without reading them.
	var calls atomic.Int32
	sk, err := s.WriteBlob(ctx, l1.d, int64(len(l1.data)), l1.opener(&calls))
	if err != nil || !sk || calls.Load() != 0 {
		t.Errorf("rewrite: skipped=%v err=%v opens=%d, want skipped, no error, 0 opens", sk, err, calls.Load())
	}
	if got := readAll(t, s, l1.d); !bytes.Equal(got, l1.data) {
		t.Error("layer 1 read back differs")
	}

	mt, b, d, err := s.GetManifest(ctx, "one")
	if err != nil || mt != testManifestType || d != d1 || !bytes.Equal(b, a.manifest) {
		t.Fatalf("GetManifest(one) = %q, %d bytes, %s, %v; want %q, %s", mt, len(b), d, err, testManifestType, d1)
	}
	if _, b, _, err := s.GetManifest(ctx, d1.String()); err != nil || !bytes.Equal(b, a.manifest) {
		t.Fatalf("GetManifest(digest) = %v", err)
	}

	// A second artifact sharing a layer, under two tags.
	l3 := randomBlob(t, 5000)
	a2 := newTestArtifact(t, l1, l3)
	d2, skipped := a2.push(t, s, "two")
	if skipped != 2 { // config and l1
		t.Errorf("second push skipped %d blobs, want 2 (config, shared layer)", skipped)
	}
	if _, err := s.PutManifest(ctx, "latest", testManifestType, a2.manifest); err != nil {
		t.Fatal(err)
	}
	tags, err := s.Tags(ctx)
	if err != nil || !slices.Equal(tags, []string{"latest", "one", "two"}) {
		t.Fatalf("Tags = %v, %v; want [latest one two]", tags, err)
	}
	// Moving a tag.
	if _, err := s.PutManifest(ctx, "latest", testManifestType, a.manifest); err != nil {
		t.Fatal(err)
	}
	if _, _, d, err := s.GetManifest(ctx, "latest"); err != nil || d != d1 {
		t.Errorf("latest after move = %s, %v; want %s", d, err, d1)
	}

	if _, _, _, err := s.GetManifest(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetManifest(nope) = %v, want ErrNotFound", err)
	}
	missing := randomBlob(t, 10)
	if _, err := s.ReadBlob(ctx, missing.d); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadBlob(missing) = %v, want ErrNotFound", err)
	}

	// Delete the second artifact: its tag goes, the first stays.
	if err := s.DeleteManifest(ctx, d2); err != nil {
		t.Fatalf("DeleteManifest: %v", err)
	}
	if _, _, _, err := s.GetManifest(ctx, d2.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetManifest(digest) after delete = %v, want ErrNotFound", err)
	}
	if toyDelete {
		return
	}
	if _, _, _, err := s.GetManifest(ctx, "two"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetManifest(two) after delete = %v, want ErrNotFound", err)
	}
	if _, _, d, err := s.GetManifest(ctx, "one"); err != nil || d != d1 {
		t.Errorf("GetManifest(one) after deleting two = %s, %v", d, err)
	}
	tags, err = s.Tags(ctx)
	if err != nil || !slices.Equal(tags, []string{"latest", "one"}) {
		t.Errorf("Tags after delete = %v, %v; want [latest one]", tags, err)
	}
	if err := s.DeleteManifest(ctx, d2); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteManifest = %v, want ErrNotFound", err)
	}
	_ = fmt.Sprint
}
