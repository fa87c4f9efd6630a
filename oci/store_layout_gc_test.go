package oci

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestRemoveUnreferencedBlobsGrace: an orphan blob younger than the grace
// period may belong to a push still running and stays; an older one, and a
// young one listed as garbage, go. A dry run removes nothing.
func TestRemoveUnreferencedBlobsGrace(t *testing.T) {
	ctx := context.Background()
	s := NewLayoutStore(filepath.Join(t.TempDir(), "layout"))
	put := func(content string) v1.Hash {
		d, n, err := v1.SHA256(strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteBlob(ctx, d, n, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }); err != nil {
			t.Fatal(err)
		}
		return d
	}
	young, old, garbage := put("young orphan"), put("old orphan"), put("garbage")
	now := time.Now()
	past := now.Add(-2 * time.Hour)
	if err := os.Chtimes(s.blobPath(old), past, past); err != nil {
		t.Fatal(err)
	}
	o := BlobGCOptions{Garbage: map[v1.Hash]bool{garbage: true}, OlderThan: now.Add(-DefaultBlobGrace), DryRun: true}
	n, _, err := s.RemoveUnreferencedBlobs(ctx, o)
	if err != nil || n != 2 {
		t.Fatalf("dry run: %d, %v; want 2 would-be removals", n, err)
	}
	for _, d := range []v1.Hash{young, old, garbage} {
		if ok, _ := s.HasBlob(ctx, d); !ok {
			t.Fatalf("dry run removed %s", d)
		}
	}
	o.DryRun = false
	n, b, err := s.RemoveUnreferencedBlobs(ctx, o)
	if err != nil || n != 2 || b != int64(len("old orphan")+len("garbage")) {
		t.Fatalf("removed %d blobs (%d bytes), %v; want 2 (%d bytes)", n, b, err, len("old orphan")+len("garbage"))
	}
	for d, want := range map[v1.Hash]bool{young: true, old: false, garbage: false} {
		if ok, _ := s.HasBlob(ctx, d); ok != want {
			t.Errorf("blob %s present=%v, want %v", d, ok, want)
		}
	}
}
