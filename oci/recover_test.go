package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/mount"
)

// pendingRestore leaves l as a pull killed in phase would: a journal and a
// staging dir whose new gocache holds new-file; the live gocache holds
// old-file.
func pendingRestore(t *testing.T, l mount.Layout, phase string) {
	t.Helper()
	writeT(t, filepath.Join(l.CacheDir(mount.GoCache), "old-file"), []byte("old"), 0o644)
	writeT(t, filepath.Join(stagedNew(l, mount.GoCache), "new-file"), []byte("new"), 0o644)
	if err := writeJournal(l, journal{Phase: phase, Caches: []mount.Cache{mount.GoCache}, Digest: "sha256:abc"}); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestRecoverInterruptedNothingPending(t *testing.T) {
	ctx := context.Background()
	l := newLayout(t)
	// Another holder has the exclusive lock: with nothing to recover the
	// lock is not even asked for.
	other, err := l.Lock(ctx, mount.Exclusive, mount.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()
	did, err := RecoverInterrupted(ctx, l, RecoverOptions{LockOptions: mount.LockOptions{NoWait: true}})
	if did != "" || err != nil {
		t.Fatalf("nothing pending: %q, %v", did, err)
	}
}

func TestRecoverInterruptedSharedLockFailsAtOnce(t *testing.T) {
	l := newLayout(t)
	pendingRestore(t, l, phaseSwap)
	k, err := l.Lock(context.Background(), mount.Shared, mount.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Unlock()
	// Waiting on ourselves would block until the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	did, err := RecoverInterrupted(ctx, l, RecoverOptions{Lock: k})
	if err == nil || did != "" {
		t.Fatalf("pending restore under a shared lock: %q, %v", did, err)
	}
	for _, want := range []string{l.Dir, "interrupted restore", "exclusive lock", "holds the lock shared"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if ctx.Err() != nil {
		t.Error("waited for the lock instead of failing at once")
	}
	if !exists(journalPath(l)) || !exists(filepath.Join(l.CacheDir(mount.GoCache), "old-file")) {
		t.Error("the restore was touched without the exclusive lock")
	}
}

func TestRecoverInterruptedFinishes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		phase, did, file string
		held             bool
	}{
		{phaseStage, "rolled back an interrupted restore of sha256:abc", "old-file", false},
		{phaseSwap, "completed an interrupted restore of sha256:abc", "new-file", false},
		{phaseSwap, "completed an interrupted restore of sha256:abc", "new-file", true}, // the caller's lock is reused
	} {
		l := newLayout(t)
		pendingRestore(t, l, tc.phase)
		var o RecoverOptions
		if tc.held {
			k, err := l.Lock(ctx, mount.Exclusive, mount.LockOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer k.Unlock()
			o.Lock = k
		}
		did, err := RecoverInterrupted(ctx, l, o)
		if err != nil || did != tc.did {
			t.Fatalf("%s (held %v): %q, %v; want %q", tc.phase, tc.held, did, err, tc.did)
		}
		if !exists(filepath.Join(l.CacheDir(mount.GoCache), tc.file)) {
			t.Errorf("%s: gocache lacks %s", tc.phase, tc.file)
		}
		if RecoveryPending(l) {
			t.Errorf("%s: journal or staging left behind", tc.phase)
		}
	}
}

func TestRecoverInterruptedLockBusy(t *testing.T) {
	ctx := context.Background()
	l := newLayout(t)
	pendingRestore(t, l, phaseStage)
	// A running pull holds the lock and has its journal there: that is
	// reported as the lock's holder, not as an interrupted restore.
	other, err := l.Lock(ctx, mount.Exclusive, mount.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()
	_, err = RecoverInterrupted(ctx, l, RecoverOptions{LockOptions: mount.LockOptions{NoWait: true}})
	var le *mount.LockedError
	if !errors.As(err, &le) || le.Dir != l.Dir {
		t.Fatalf("busy lock with --no-wait: %v, want a *mount.LockedError for %s", err, l.Dir)
	}
	if !exists(journalPath(l)) {
		t.Error("the journal went without the lock")
	}
}

func TestRecoverInterruptedErrorsNameTheDir(t *testing.T) {
	ctx := context.Background()
	l := newLayout(t)
	writeT(t, journalPath(l), []byte("{not json"), 0o644)
	if _, err := RecoverInterrupted(ctx, l, RecoverOptions{}); err == nil || !strings.Contains(err.Error(), l.Dir) {
		t.Fatalf("corrupt journal: %v, want an error naming %s", err, l.Dir)
	}
	// A lock held on another directory is refused, not silently trusted.
	m := newLayout(t)
	k, err := m.Lock(ctx, mount.Exclusive, mount.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Unlock()
	if _, err := RecoverInterrupted(ctx, l, RecoverOptions{Lock: k}); err == nil || !strings.Contains(err.Error(), l.Dir) {
		t.Fatalf("lock on %s used for %s: %v", m.Dir, l.Dir, err)
	}
}
