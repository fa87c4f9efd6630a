package mount

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// lastSnapshotFile records the snapshot most recently pushed or pulled, for
// status and doctor. The oci package keeps its own per-ref base snapshots
// (the delta bases) next to it under State.
const lastSnapshotFile = "last-snapshot.json"

// SnapshotRecord describes the snapshot last pushed to or pulled from a store.
type SnapshotRecord struct {
	// Direction is "push" or "pull".
	Direction string `json:"direction"`
	// Ref is the reference as given (registry ref, oci:PATH:TAG, or the
	// embedded store's tag).
	Ref string `json:"ref"`
	// Digest is the snapshot manifest's digest ("sha256:...").
	Digest string `json:"digest"`
	// Time is when the transfer finished.
	Time time.Time `json:"time"`
	// Files and Bytes count the entries and uncompressed bytes in the
	// snapshot.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// WriteLastSnapshot records rec as the last snapshot transferred.
func (l Layout) WriteLastSnapshot(rec SnapshotRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(l.State, lastSnapshotFile), append(b, '\n'), 0o644)
}

// LastSnapshot returns the last snapshot recorded, or nil when none was.
func (l Layout) LastSnapshot() (*SnapshotRecord, error) {
	return ReadJSONFile[SnapshotRecord](filepath.Join(l.State, lastSnapshotFile))
}

// ReadJSONFile decodes the JSON state file at path into a new T. A missing
// file is not an error: it returns nil, nil (nothing recorded yet). Errors
// name the file.
func ReadJSONFile[T any](path string) (*T, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers see the old content or the new, never a
// part. The directory is created when missing.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
