package oci

import (
	"context"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// TestRegistryStoreReal runs the store contract against the real
// distribution registry (Debian's docker-registry) on loopback, and counts
// uploads in its access log: a re-push uploads nothing.
func TestRegistryStoreReal(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	s := openTestRegistry(t, reg.Host, "cache/contract", StoreOptions{})
	testStoreContract(t, s, false)

	s2 := openTestRegistry(t, reg.Host, "cache/skip", StoreOptions{})
	a := newTestArtifact(t, randomBlob(t, 1<<20), randomBlob(t, 1000))
	before := len(reg.Requests(t, "PUT", "/blobs/uploads/"))
	if _, skipped := a.push(t, s2, "v1"); skipped != 0 {
		t.Errorf("first push skipped %d blobs", skipped)
	}
	if got := len(reg.Requests(t, "PUT", "/blobs/uploads/")) - before; got != 3 {
		t.Errorf("first push completed %d uploads, want 3 (config, 2 layers)", got)
	}
	// A fresh store (a re-run) skips every blob: HEAD, no upload.
	s3 := openTestRegistry(t, reg.Host, "cache/skip", StoreOptions{})
	if _, skipped := a.push(t, s3, "v1"); skipped != 3 {
		t.Errorf("re-push skipped %d blobs, want 3", skipped)
	}
	if got := len(reg.Requests(t, "PUT", "/blobs/uploads/")) - before; got != 3 {
		t.Errorf("after re-push %d uploads in total, want still 3", got)
	}
	if got := len(reg.Requests(t, "POST", "/blobs/uploads/")); got == 0 {
		t.Error("access log shows no upload starts: is the log being read?")
	}
	_ = context.Background
}
