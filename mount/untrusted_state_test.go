package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// Issue 11, finding 1: the build can write DIR/.melcache. These plant what
// a build could and check that taking the lock never writes, creates or
// removes anything outside the state directory.

func untrustedLayout(t *testing.T) (Layout, string) {
	t.Helper()
	base := testenv.TempDir(t)
	l, err := New(filepath.Join(base, "cache"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(context.Background(), PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, "keep.txt"), []byte("not melcache's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return l, victim
}

func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestLockMarkerLinkNotWrittenThrough: a link planted at this process's
// marker name is replaced, not truncated through (os.WriteFile did).
func TestLockMarkerLinkNotWrittenThrough(t *testing.T) {
	l, victim := untrustedLayout(t)
	before := treeState(t, victim)
	for _, m := range []LockMode{Exclusive, Shared} {
		marker := filepath.Join(l.State, lockHoldersDir, fmt.Sprintf("%d.%s", os.Getpid(), m))
		if err := os.Symlink(filepath.Join(victim, "keep.txt"), marker); err != nil {
			t.Fatal(err)
		}
		k, err := l.Lock(context.Background(), m, LockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if hs, err := l.Holders(); err != nil || len(hs) != 1 || hs[0].PID != os.Getpid() {
			t.Errorf("%s: holders %v, %v; want this process", m, hs, err)
		}
		if err := k.Unlock(); err != nil {
			t.Fatal(err)
		}
		if d := diffStates(before, treeState(t, victim)); len(d) > 0 {
			t.Fatalf("%s: the marker link's target changed: %v", m, d)
		}
	}
}

// TestLockHoldersDirLinkIgnored: lock.d pointing at another directory is
// neither written into nor pruned (Holders removes dead markers).
func TestLockHoldersDirLinkIgnored(t *testing.T) {
	l, victim := untrustedLayout(t)
	dead := filepath.Join(victim, fmt.Sprintf("%d.shared", deadPID(t)))
	if err := os.WriteFile(dead, []byte("looks like a dead marker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeState(t, victim)
	if err := os.RemoveAll(filepath.Join(l.State, lockHoldersDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(l.State, lockHoldersDir)); err != nil {
		t.Fatal(err)
	}
	k, err := l.Lock(context.Background(), Exclusive, LockOptions{})
	if err != nil {
		t.Fatal(err) // the marker is best effort: the lock itself works
	}
	if _, err := l.Holders(); !errors.As(err, new(*UntrustedError)) {
		t.Errorf("Holders through a linked lock.d: %v; want an UntrustedError", err)
	}
	k.Unlock()
	if d := diffStates(before, treeState(t, victim)); len(d) > 0 {
		t.Fatalf("the directory lock.d points at changed: %v", d)
	}
}

// TestLockFileLinkRefused: .melcache/lock pointing at a missing path is
// refused with an error naming it; the path is not created.
func TestLockFileLinkRefused(t *testing.T) {
	l, victim := untrustedLayout(t)
	lock := filepath.Join(l.State, lockFileName)
	os.Remove(lock)
	target := filepath.Join(victim, "created-by-lock")
	if err := os.Symlink(target, lock); err != nil {
		t.Fatal(err)
	}
	_, err := l.Lock(context.Background(), Shared, LockOptions{})
	if err == nil || !containsAll(err.Error(), lock, "symbolic link") {
		t.Errorf("Lock with a linked lock file: %v; want a refusal naming %s", err, lock)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created through the planted link: %v", target, err)
	}
}

// TestStateEntryOfThirdUserRefused: a state file owned by a user who is
// neither the caller, root, DIR's owner nor the caches' owner is refused.
func TestStateEntryOfThirdUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		if testenv.InCI() {
			t.Fatal("CI=true: the test needs root to make a file another user's")
		}
		t.Skip("needs root to make a file another user's")
	}
	l, _ := untrustedLayout(t)
	if err := l.WriteLastSnapshot(SnapshotRecord{Direction: "pull", Ref: "planted"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(l.State, lastSnapshotFile), 4242, 4242); err != nil {
		t.Fatal(err)
	}
	rec, err := l.LastSnapshot()
	if rec != nil || !errors.As(err, new(*UntrustedError)) || !containsAll(err.Error(), "uid 4242", lastSnapshotFile) {
		t.Fatalf("LastSnapshot of a third user's file = %v, %v; want an UntrustedError naming it", rec, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
