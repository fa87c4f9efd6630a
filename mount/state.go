package mount

import (
	"time"

	"github.com/melcache/melcache/internal/fsutil"
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
//
// Durability: fsutil.SyncFile. The record only tells status and doctor what
// was transferred last; losing it to a crash costs a line of status output,
// so the write does not wait for a flush of the state directory.
func (l Layout) WriteLastSnapshot(rec SnapshotRecord) error {
	return WriteState(l, lastSnapshotFile, rec, fsutil.WriteOptions{Sync: fsutil.SyncFile})
}

// LastSnapshot returns the last snapshot recorded, or nil when none was.
func (l Layout) LastSnapshot() (*SnapshotRecord, error) {
	return ReadState[SnapshotRecord](l, lastSnapshotFile)
}
