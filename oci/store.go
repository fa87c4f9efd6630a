package oci

import (
	"context"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Store is where snapshots live: a registry repository, an OCI image layout on
// disk, or the embedded layout under the user's cache directory. It is the
// seam between the snapshot logic (pack, delta, restore) and transport.
//
// Implementations must be safe for concurrent use by one process; blob
// writes are idempotent (writing a blob the store has is a cheap no-op).
type Store interface {
	// String names the store for messages: "ghcr.io/org/cache",
	// "oci:/path/layout", "embedded store /home/u/.cache/melcache/store".
	String() string

	// HasBlob reports whether the store holds a blob.
	HasBlob(ctx context.Context, d v1.Hash) (bool, error)
	// WriteBlob stores a blob of the given digest and size. open is called
	// (possibly more than once, for retries) to read the blob's bytes. It
	// returns skipped=true when the store already had it.
	WriteBlob(ctx context.Context, d v1.Hash, size int64, open func() (io.ReadCloser, error)) (skipped bool, err error)
	// ReadBlob opens a blob for streaming. Callers verify the digest while
	// reading. Implementations retry transient failures, and the registry
	// store resumes a download cut mid-stream (a Range request from the
	// offset reached) behind the same reader, so the caller's hash still
	// covers one continuous stream; only a failure that outlasts the retries
	// surfaces as a read error.
	ReadBlob(ctx context.Context, d v1.Hash) (io.ReadCloser, error)

	// PutManifest stores a manifest under its digest and, when tag is not
	// empty, points tag at it.
	PutManifest(ctx context.Context, tag string, mediaType string, manifest []byte) (v1.Hash, error)
	// GetManifest fetches a manifest by tag or by "sha256:..." digest.
	GetManifest(ctx context.Context, tagOrDigest string) (mediaType string, manifest []byte, d v1.Hash, err error)
	// Tags lists the tags in the repository or layout, sorted.
	Tags(ctx context.Context) ([]string, error)
	// DeleteManifest removes a manifest (and the tags pointing at it).
	// Registries may refuse with ErrDeleteUnsupported.
	DeleteManifest(ctx context.Context, d v1.Hash) error
}

// ErrNotFound is returned (wrapped) when a manifest or blob does not exist.
var ErrNotFound = errors.New("not found")

// ErrDeleteUnsupported is returned (wrapped) when a registry refuses to
// delete manifests.
var ErrDeleteUnsupported = errors.New("registry does not allow deleting manifests")
