package oci

import (
	"context"
	"errors"
	"fmt"

	"github.com/melcache/melcache/mount"
)

// RecoverOptions configure RecoverInterrupted.
type RecoverOptions struct {
	// Lock is a lock the caller already holds on the layout. An exclusive
	// one is reused. With a shared one RecoverInterrupted fails at once when
	// a restore is pending: taking the exclusive lock would wait on the
	// caller itself.
	Lock *mount.Lock
	// LockOptions configure waiting for the exclusive lock (NoWait fails at
	// once with a *mount.LockedError; OnWait names the holders).
	LockOptions mount.LockOptions
}

// RecoverInterrupted is the one place every command finishes a restore that
// a killed pull left behind, before it reads or changes the caches: push
// would otherwise snapshot, verify judge, and prune or clean act on, a
// half-swapped directory. When a journal or staging dir is there
// (RecoveryPending) it takes the exclusive lock, unless o.Lock already is
// one, and completes or rolls back the restore (recoverJournal). It returns what
// it did, e.g. "rolled back an interrupted restore of sha256:…", or "" when
// there was nothing to do. Errors name the cache directory.
func RecoverInterrupted(ctx context.Context, l mount.Layout, o RecoverOptions) (did string, err error) {
	if o.Lock.Covers(mount.Shared) {
		// A lock held on another directory protects nothing here; Acquire
		// reuses a held lock and refuses one on another directory.
		if _, err := l.Acquire(ctx, o.Lock, o.Lock.Mode(), mount.LockOptions{}); err != nil {
			return "", err
		}
	}
	if !RecoveryPending(l) {
		return "", nil
	}
	if o.Lock != nil && !o.Lock.Covers(mount.Exclusive) {
		return "", fmt.Errorf("cache directory %s has an interrupted restore to finish first (journal %s), which needs the exclusive lock, "+
			"but the caller holds the lock %s; release it and call oci.RecoverInterrupted, or run melcache pull",
			l.Dir, journalPath(l), o.Lock.Mode())
	}
	release, err := l.Acquire(ctx, o.Lock, mount.Exclusive, o.LockOptions)
	if err != nil {
		// While a pull runs, its journal is there too: with the lock busy
		// we cannot tell a live restore from an interrupted one, so report
		// the lock and its holders, not "interrupted".
		var le *mount.LockedError
		if errors.As(err, &le) {
			return "", err
		}
		return "", fmt.Errorf("finishing an interrupted restore first: %w", err) // err names the dir
	}
	defer release()
	did, err = recoverJournal(l)
	if err != nil {
		return "", fmt.Errorf("recovering an interrupted restore in %s: %w", l.Dir, err)
	}
	return did, nil
}
