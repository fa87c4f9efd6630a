package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// VerifyError reports content that does not match what the snapshot
// declares. It is never retried.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

func verifyErrorf(format string, args ...any) error {
	return &VerifyError{Err: fmt.Errorf(format, args...)}
}

// readSmallBlob reads a metadata blob whole, checking its size and digest.
func readSmallBlob(ctx context.Context, s Store, d v1.Descriptor, limit int64) ([]byte, error) {
	if d.Size < 0 || d.Size > limit {
		return nil, verifyErrorf("blob %s: size %d over the %d limit", d.Digest, d.Size, limit)
	}
	rc, err := s.ReadBlob(ctx, d.Digest)
	if err != nil {
		return nil, nameStore(s, "reading blob "+d.Digest.String()+" from", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, nameStore(s, "reading blob "+d.Digest.String()+" from", err)
	}
	if int64(len(b)) != d.Size {
		return nil, verifyErrorf("%s: blob %s is %d bytes, manifest declares %d", s, d.Digest, len(b), d.Size)
	}
	sum := sha256.Sum256(b)
	if d.Digest.Algorithm != "sha256" || hex.EncodeToString(sum[:]) != d.Digest.Hex {
		return nil, verifyErrorf("%s: blob %s: content digest is sha256:%x", s, d.Digest, sum)
	}
	return b, nil
}

// FetchSnapshot reads and validates a snapshot's manifest, config and
// index chain by tag or "sha256:..." digest: every index document is
// fetched, checked against its digest and declared size, and applied in
// order (index_chain.go).
func FetchSnapshot(ctx context.Context, s Store, tagOrDigest string) (*Snapshot, error) {
	snap, err := fetchHead(ctx, s, tagOrDigest)
	if err != nil {
		return nil, err
	}
	m, c := snap.Manifest, snap.Config
	x, ib, err := readIndexChain(ctx, s, m.Layers[:len(c.Indexes)], c)
	if err != nil {
		return nil, err // names the store and the index document
	}
	if err := materialise(x, c); err != nil {
		return nil, fmt.Errorf("%s %s: %w", s, tagOrDigest, err)
	}
	if err := checkIndex(x, c); err != nil {
		return nil, fmt.Errorf("%s %s: %w", s, tagOrDigest, err)
	}
	snap.Index, snap.IndexBytes = x, ib
	return snap, nil
}

// fetchHead reads and validates a snapshot's manifest and config: the
// Snapshot it returns has no Index.
func fetchHead(ctx context.Context, s Store, tagOrDigest string) (*Snapshot, error) {
	mt, mb, d, err := s.GetManifest(ctx, tagOrDigest)
	if err != nil {
		return nil, err
	}
	if len(mb) > maxManifestBytes {
		return nil, verifyErrorf("%s: manifest %s is %d bytes, over the %d limit", s, tagOrDigest, len(mb), maxManifestBytes)
	}
	m, err := parseManifest(mt, mb)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", s, tagOrDigest, err)
	}
	cb, err := readSmallBlob(ctx, s, m.Config, maxConfigBytes)
	if err != nil {
		return nil, err
	}
	c, err := decodeConfig(m, cb)
	if err != nil {
		return nil, fmt.Errorf("%s %s: config: %w", s, tagOrDigest, err)
	}
	if err := checkConfig(c, m); err != nil {
		return nil, fmt.Errorf("%s %s: %w", s, tagOrDigest, err)
	}
	return &Snapshot{Digest: d, Manifest: m, Config: c, ManifestBytes: int64(len(mb)), ConfigBytes: int64(len(cb))}, nil
}

// isNotFound reports a missing manifest or blob.
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
