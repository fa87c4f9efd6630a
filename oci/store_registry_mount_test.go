package oci

import (
	"bytes"
	"context"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/melcache/melcache/internal/testenv"
)

// TestRegistryMountBlob: on the real registry, a mount from a repository
// holding the blob answers 201 and makes it present without an upload; a
// mount from one that lacks it is declined (202), reported as not
// mounted, and leaves the target without the blob.
func TestRegistryMountBlob(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	ctx := context.Background()
	a := openTestRegistry(t, reg.Host, "mount/a", StoreOptions{})
	b := openTestRegistry(t, reg.Host, "mount/b", StoreOptions{})
	empty := openTestRegistry(t, reg.Host, "mount/empty", StoreOptions{})
	blob := randomBlob(t, 64<<10)
	if _, err := a.WriteBlob(ctx, blob.d, int64(len(blob.data)), blob.opener(nil)); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.MountBlob(ctx, blob.d, empty); err != nil || ok {
		t.Fatalf("mount from a repository lacking the blob = %v, %v; want declined", ok, err)
	}
	if has, _ := b.HasBlob(ctx, blob.d); has {
		t.Fatal("a declined mount left the blob in the target")
	}
	if ok, err := b.MountBlob(ctx, blob.d, a); err != nil || !ok {
		t.Fatalf("mount from the repository holding the blob = %v, %v; want mounted", ok, err)
	}
	if got := readAll(t, b, blob.d); !bytes.Equal(got, blob.data) {
		t.Fatal("mounted blob reads back different bytes")
	}
	if n := len(reg.Requests(t, "PUT", "/v2/mount/b/")); n != 0 {
		t.Errorf("%d PUTs to the mount target; a mount uploads nothing", n)
	}
	if n := len(reg.Requests(t, "DELETE", "/v2/mount/b/blobs/uploads/")); n != 1 {
		t.Errorf("the declined mount's upload session: %d DELETEs, want 1", n)
	}

	for _, bad := range []string{"127.0.0.2:5000/mount/a", reg.Host + "/Mount/A", reg.Host + "//x", "mount/a"} {
		if _, err := a.Sibling(bad); err == nil {
			t.Errorf("Sibling(%q) accepted", bad)
		}
	}
}

// decliningStore is a registry store whose registry declines every mount,
// as a registry that does not implement them does.
type decliningStore struct{ *RegistryStore }

func (decliningStore) MountBlob(context.Context, v1.Hash, BlobMounter) (bool, error) {
	return false, nil
}

// TestEnsureBlobsCopiesWhenMountDeclined: when the registry declines a
// mount, the base's blob is streamed from its repository into the target
// (a normal upload), and counted as copied.
func TestEnsureBlobsCopiesWhenMountDeclined(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	ctx := context.Background()
	from := openTestRegistry(t, reg.Host, "copy/from", StoreOptions{})
	to := decliningStore{openTestRegistry(t, reg.Host, "copy/to", StoreOptions{})}
	var descs []v1.Descriptor
	var blobs []testBlob
	for _, n := range []int{1000, 200 << 10} {
		blob := randomBlob(t, n)
		if _, err := from.WriteBlob(ctx, blob.d, int64(n), blob.opener(nil)); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, blob)
		descs = append(descs, v1.Descriptor{MediaType: types.MediaType(LayerMediaType), Digest: blob.d, Size: int64(n)})
	}
	got, ok := ensureBlobs(ctx, to, from, descs, 2, testLog(t))
	if !ok || got.copied != 2 || got.mounted != 0 || got.bytes != 1000+200<<10 {
		t.Fatalf("ensureBlobs = %+v, %v; want 2 copied", got, ok)
	}
	for _, blob := range blobs {
		if b := readAll(t, to, blob.d); !bytes.Equal(b, blob.data) {
			t.Errorf("copied blob %s differs", blob.d)
		}
	}
	// Same store: a missing blob cannot be fetched from anywhere.
	missing := randomBlob(t, 10)
	if _, ok := ensureBlobs(ctx, from, from, []v1.Descriptor{{Digest: missing.d, Size: 10}}, 1, testLog(t)); ok {
		t.Error("ensureBlobs in the same store accepted a missing blob")
	}
}
