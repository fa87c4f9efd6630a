package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// lockRetryInterval is how often a waiting command retries the lock. flock(2)
// has no wake-up on release; 100ms keeps the wait invisible next to a build
// that takes seconds, at a negligible cost in syscalls.
const lockRetryInterval = 100 * time.Millisecond

// lockFileName is the flock(2) target inside the state directory. Its content
// is irrelevant: holders announce themselves in lockHoldersDir.
const (
	lockFileName   = "lock"
	lockHoldersDir = "lock.d"
)

// LockMode is the kind of lock held on a cache directory.
type LockMode int

const (
	// Shared is held by builds: Go's caches tolerate concurrent builds.
	Shared LockMode = iota
	// Exclusive is held by commands that change the caches as a whole
	// (prepare, restore, prune, clean, repair).
	Exclusive
)

func (m LockMode) String() string {
	if m == Exclusive {
		return "exclusive"
	}
	return "shared"
}

// Holder is a process that announced it holds the lock.
type Holder struct {
	PID  int      `json:"pid"`
	Mode LockMode `json:"-"`
}

func (h Holder) String() string { return fmt.Sprintf("pid %d (%s)", h.PID, h.Mode) }

// LockedError reports that the lock is held by others and the caller chose
// not to wait.
type LockedError struct {
	Dir     string
	Holders []Holder
}

func (e *LockedError) Error() string {
	if len(e.Holders) == 0 {
		return fmt.Sprintf("cache directory %s is locked by another process; not waiting (--no-wait)", e.Dir)
	}
	var hs []string
	for _, h := range e.Holders {
		hs = append(hs, h.String())
	}
	return fmt.Sprintf("cache directory %s is locked by %s; not waiting (--no-wait)", e.Dir, strings.Join(hs, ", "))
}

// LockOptions configure Lock.
type LockOptions struct {
	// NoWait fails at once with a *LockedError instead of waiting.
	NoWait bool
	// OnWait, if set, is called once when the lock is busy and the caller is
	// about to wait, with the processes that hold it.
	OnWait func(holders []Holder)
}

// Lock is a lock held on a cache directory. A Lock is not reentrant: pass it
// to library calls (their Options.Lock) so that a command composed of others
// never waits on itself.
type Lock struct {
	layout Layout
	mode   LockMode
	fl     *flock.Flock
	marker string
}

// Mode returns the mode the lock is held in.
func (k *Lock) Mode() LockMode { return k.mode }

// Covers reports whether k is held and strong enough for mode.
func (k *Lock) Covers(mode LockMode) bool {
	return k != nil && k.fl != nil && (k.mode == Exclusive || mode == Shared)
}

// Lock acquires the cache directory's lock in the given mode, waiting until
// ctx is done unless o.NoWait. The state directory is created when missing;
// the cache directory itself must exist.
func (l Layout) Lock(ctx context.Context, mode LockMode, o LockOptions) (*Lock, error) {
	if fi, err := os.Stat(l.Dir); err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.Dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("lock %s: not a directory", l.Dir)
	}
	if err := os.MkdirAll(filepath.Join(l.State, lockHoldersDir), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.Dir, err)
	}
	fl := flock.New(filepath.Join(l.State, lockFileName))
	try := fl.TryLock
	tryCtx := fl.TryLockContext
	if mode == Shared {
		try, tryCtx = fl.TryRLock, fl.TryRLockContext
	}
	ok, err := try()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", fl.Path(), err)
	}
	if !ok {
		holders, _ := l.Holders()
		if o.NoWait {
			return nil, &LockedError{Dir: l.Dir, Holders: holders}
		}
		if o.OnWait != nil {
			o.OnWait(holders)
		}
		if ok, err = tryCtx(ctx, lockRetryInterval); err != nil || !ok {
			if err == nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("waiting for lock on %s: %w", l.Dir, err)
		}
	}
	k := &Lock{layout: l, mode: mode, fl: fl,
		marker: filepath.Join(l.State, lockHoldersDir, fmt.Sprintf("%d.%s", os.Getpid(), mode))}
	// The marker only names the holder for waiting commands; failing to write
	// it must not fail the command.
	_ = os.WriteFile(k.marker, nil, 0o644)
	return k, nil
}

// Unlock releases the lock. It is safe to call more than once.
func (k *Lock) Unlock() error {
	if k == nil || k.fl == nil {
		return nil
	}
	_ = os.Remove(k.marker)
	err := k.fl.Close()
	k.fl = nil
	return err
}

// Acquire returns a release function for a lock of the given mode: when held
// already covers mode it is reused and release does nothing, otherwise a new
// lock is taken. Library calls use it so that they accept a caller's lock.
func (l Layout) Acquire(ctx context.Context, held *Lock, mode LockMode, o LockOptions) (release func() error, err error) {
	if held.Covers(mode) {
		if held.layout.State != l.State {
			return nil, fmt.Errorf("lock held on %s, not %s", held.layout.Dir, l.Dir)
		}
		return func() error { return nil }, nil
	}
	k, err := l.Lock(ctx, mode, o)
	if err != nil {
		return nil, err
	}
	return k.Unlock, nil
}

// Holders lists the live processes that announced holding the lock. Markers
// left by processes that died are ignored (and removed when possible).
func (l Layout) Holders() ([]Holder, error) {
	dir := filepath.Join(l.State, lockHoldersDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var hs []Holder
	for _, e := range ents {
		pidStr, modeStr, ok := strings.Cut(e.Name(), ".")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if !alive(pid) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		m := Shared
		if modeStr == Exclusive.String() {
			m = Exclusive
		}
		hs = append(hs, Holder{PID: pid, Mode: m})
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].PID < hs[j].PID })
	return hs, nil
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
