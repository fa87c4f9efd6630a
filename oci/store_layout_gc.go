package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/melcache/melcache/internal/fsutil"
)

// BlobGCOptions configure LayoutStore.RemoveUnreferencedBlobs.
type BlobGCOptions struct {
	// Garbage are blobs known to be garbage (those of manifests just
	// deleted): removed whatever their age once nothing references them.
	Garbage map[v1.Hash]bool
	// OlderThan: other unreferenced blobs and temp files are removed only
	// when last modified before this time, since a push writes blobs
	// before its manifest (zero: remove them all).
	OlderThan time.Time
	// DryRun counts and removes nothing.
	DryRun bool
	// AssumeDeleted are manifests to count as gone (a dry run of a gc that
	// would delete them).
	AssumeDeleted map[v1.Hash]bool
}

// RemoveUnreferencedBlobs removes the blobs no manifest reachable from
// index.json references (UnreferencedBlobs), under the layout lock so no
// manifest can be added meanwhile, and returns how many it removed and
// their bytes. A blob a concurrent push already uploaded but whose manifest
// it has not written yet is protected by OlderThan; the same push's manifest
// is refused (as registries refuse one naming a missing blob) if the blob
// was one of Garbage, and a re-run uploads it again.
func (s *LayoutStore) RemoveUnreferencedBlobs(ctx context.Context, o BlobGCOptions) (n int, bytes int64, err error) {
	if _, err := os.Stat(filepath.Join(s.dir, layoutBlobsDir)); errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lk := flock.New(filepath.Join(s.dir, layoutLockFile))
	if _, err := lk.TryLockContext(ctx, lockRetryDelay); err != nil {
		return 0, 0, fmt.Errorf("locking %s: %w", filepath.Join(s.dir, layoutLockFile), err)
	}
	defer lk.Unlock()
	paths, err := s.unreferenced(ctx, o.AssumeDeleted)
	if err != nil {
		return 0, 0, err
	}
	for _, rel := range paths {
		p := filepath.Join(s.dir, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return n, bytes, fmt.Errorf("%s: %w", s, err)
		}
		h := v1.Hash{Algorithm: "sha256", Hex: filepath.Base(rel)}
		if !o.Garbage[h] && !o.OlderThan.IsZero() && !fi.ModTime().Before(o.OlderThan) {
			continue
		}
		if !o.DryRun {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, bytes, fmt.Errorf("%s: remove %s: %w", s, p, err)
			}
		}
		n++
		bytes += fi.Size()
	}
	if n > 0 && !o.DryRun {
		if err := fsutil.SyncDir(filepath.Join(s.dir, layoutBlobsDir, "sha256")); err != nil {
			return n, bytes, err
		}
	}
	return n, bytes, nil
}
