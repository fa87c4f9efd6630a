package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// Names under the state directory used by a restore.
const (
	// journalName records a restore in progress so that the next command
	// completes it or rolls it back.
	journalName = "journal.json"
	// stagingName is where a restore builds the new caches: inside the
	// state directory, so on the caches' filesystem (renames and hard links
	// work) and never seen by Go.
	stagingName = "staging"
)

// Journal phases. A restore moves stage → swap → cleanup.
const (
	// phaseStage: the staging dir is being built; the caches are untouched.
	// Recovery rolls back (removes the staging dir).
	phaseStage = "stage"
	// phaseSwap: staging is complete; caches are being renamed. Recovery
	// rolls forward (finishes the renames).
	phaseSwap = "swap"
	// phaseCleanup: the new caches are in place; the old ones are deleted.
	phaseCleanup = "cleanup"
)

type journal struct {
	Phase  string        `json:"phase"`
	Caches []mount.Cache `json:"caches"`
	Digest string        `json:"digest"`
}

func journalPath(l mount.Layout) string { return filepath.Join(l.State, journalName) }
func stagingDir(l mount.Layout) string  { return filepath.Join(l.State, stagingName) }
func stagedNew(l mount.Layout, c mount.Cache) string {
	return filepath.Join(stagingDir(l), "new", string(c))
}
func stagedOld(l mount.Layout, c mount.Cache) string {
	return filepath.Join(stagingDir(l), "old", string(c))
}

// writeJournal records j.
//
// Durability: fsutil.SyncFileAndDir. Each phase's journal must be on disk
// before the renames it describes start, or a crash could leave caches half
// swapped with no journal saying which way to recover.
func writeJournal(l mount.Layout, j journal) error {
	return fsutil.WriteJSON(l.State, journalName, j, fsutil.WriteOptions{Sync: fsutil.SyncFileAndDir, CreateDirs: true})
}

// RecoveryPending reports whether an interrupted restore left a journal or
// a staging directory that RecoverInterrupted must deal with.
func RecoveryPending(l mount.Layout) bool {
	for _, p := range []string{journalPath(l), stagingDir(l)} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return false
}

// recoverJournal completes or rolls back a restore that was interrupted (killed,
// power loss) and reports what it did ("" when there was nothing to do).
// The caller must hold the exclusive lock: RecoverInterrupted, the one entry
// point every command calls, takes it.
func recoverJournal(l mount.Layout) (string, error) {
	jp, err := fsutil.ReadJSON[journal](l.State, journalName)
	if err != nil {
		return "", fmt.Errorf("restore journal: %w (remove %s and %s to reset)", err, journalPath(l), stagingDir(l))
	}
	if jp == nil {
		// A staging dir without a journal is debris from a restore killed
		// before it wrote the journal.
		if _, err := os.Stat(stagingDir(l)); err == nil {
			return "removed an abandoned staging directory", fsutil.RemoveAll(stagingDir(l))
		}
		return "", nil
	}
	j := *jp
	var did string
	switch j.Phase {
	case phaseStage:
		did = "rolled back an interrupted restore of " + j.Digest
	case phaseSwap:
		if err := swapIn(l, j.Caches); err != nil {
			return "", err
		}
		did = "completed an interrupted restore of " + j.Digest
	case phaseCleanup:
		did = "cleaned up after the restore of " + j.Digest
	default:
		return "", fmt.Errorf("restore journal %s: unknown phase %q", journalPath(l), j.Phase)
	}
	if err := fsutil.RemoveAll(stagingDir(l)); err != nil {
		return "", err
	}
	if err := os.Remove(journalPath(l)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return did, fsutil.SyncDir(l.State)
}

// swapIn moves each staged cache into place; it is idempotent, so recovery
// can run it again after a crash at any point inside it.
func swapIn(l mount.Layout, caches []mount.Cache) error {
	if err := os.MkdirAll(filepath.Join(stagingDir(l), "old"), 0o755); err != nil {
		return err
	}
	for i, c := range caches {
		nw, old, live := stagedNew(l, c), stagedOld(l, c), l.CacheDir(c)
		if _, err := os.Lstat(nw); errors.Is(err, os.ErrNotExist) {
			continue // already swapped
		}
		if _, err := os.Lstat(live); err == nil {
			if _, err := os.Lstat(old); err == nil {
				return fmt.Errorf("restore swap: both %s and %s exist; remove %s to roll back", live, old, journalPath(l))
			}
			if err := os.Rename(live, old); err != nil {
				return fmt.Errorf("restore swap: %w", err)
			}
		}
		if err := os.Rename(nw, live); err != nil {
			return fmt.Errorf("restore swap: %w", err)
		}
		if i == 0 {
			crashPoint("pull-swap")
		}
	}
	return fsutil.SyncDir(l.Dir)
}
