package mount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"golang.org/x/sys/unix"
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
	state  *os.Root // the state directory, verified (OpenState)
	f      *os.File // the flocked lock file; nil once released
	marker string   // the holder marker, relative to state; "" if none
}

// Mode returns the mode the lock is held in.
func (k *Lock) Mode() LockMode { return k.mode }

// Covers reports whether k is held and strong enough for mode.
func (k *Lock) Covers(mode LockMode) bool {
	return k != nil && k.f != nil && (k.mode == Exclusive || mode == Shared)
}

// lockFileMode lets every user open the lock file to flock it: flock(2)
// needs only a read-only descriptor, so a lock file root created still
// serves the build user.
const lockFileMode = 0o644

// Lock acquires the cache directory's lock in the given mode, waiting until
// ctx is done unless o.NoWait. The state directory is created when missing;
// the cache directory itself must exist. The lock file and the holder
// marker are opened inside the verified state directory without following
// links (OpenState): a link planted there is refused, never written
// through.
func (l Layout) Lock(ctx context.Context, mode LockMode, o LockOptions) (*Lock, error) {
	if fi, err := os.Stat(l.Dir); err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.Dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("lock %s: not a directory", l.Dir)
	}
	state, err := l.OpenState(true)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.Dir, err)
	}
	f, err := fsutil.OpenFileNoFollow(state, lockFileName, os.O_RDONLY|os.O_CREATE, lockFileMode)
	if err == nil {
		if fi, serr := f.Stat(); serr == nil {
			err = l.checkEntry(fi, filepath.Join(l.State, lockFileName))
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		state.Close()
		return nil, fmt.Errorf("lock %s: %w", l.Dir, err)
	}
	k := &Lock{layout: l, mode: mode, state: state, f: f}
	if err := k.acquire(ctx, o); err != nil {
		f.Close()
		state.Close()
		return nil, err
	}
	k.writeMarker()
	return k, nil
}

// acquire flocks k.f, waiting (polling every lockRetryInterval: flock(2)
// has no timed wait) unless o.NoWait.
func (k *Lock) acquire(ctx context.Context, o LockOptions) error {
	how := unix.LOCK_SH
	if k.mode == Exclusive {
		how = unix.LOCK_EX
	}
	try := func() (bool, error) {
		err := unix.Flock(int(k.f.Fd()), how|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
		for errors.Is(err, unix.EINTR) {
			err = unix.Flock(int(k.f.Fd()), how|unix.LOCK_NB)
		}
		if err != nil {
			return false, fmt.Errorf("lock %s: %w", k.f.Name(), err)
		}
		return true, nil
	}
	ok, err := try()
	if err != nil || ok {
		return err
	}
	holders, _ := k.layout.Holders()
	if o.NoWait {
		return &LockedError{Dir: k.layout.Dir, Holders: holders}
	}
	if o.OnWait != nil {
		o.OnWait(holders)
	}
	t := time.NewTicker(lockRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for lock on %s: %w", k.layout.Dir, ctx.Err())
		case <-t.C:
		}
		if ok, err := try(); err != nil || ok {
			return err
		}
	}
}

// writeMarker announces the holder in lock.d. The marker only names the
// holder for waiting commands; failing to write it must not fail the
// command, so a planted link or a foreign lock.d is ignored (no marker).
func (k *Lock) writeMarker() {
	if k.layout.StateSubdir(k.state, lockHoldersDir, true) != nil {
		return
	}
	name := filepath.Join(lockHoldersDir, fmt.Sprintf("%d.%s", os.Getpid(), k.mode))
	for range 2 {
		f, err := fsutil.OpenFileNoFollow(k.state, name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			f.Close()
			k.marker = name
			return
		}
		if !errors.Is(err, fs.ErrExist) {
			return
		}
		// A marker of a dead process with our pid, or something planted:
		// remove the entry itself (never a link's target) and try again.
		if k.state.Remove(name) != nil {
			return
		}
	}
}

// Unlock releases the lock. It is safe to call more than once.
func (k *Lock) Unlock() error {
	if k == nil || k.f == nil {
		return nil
	}
	if k.marker != "" {
		_ = k.state.Remove(k.marker)
	}
	err := k.f.Close() // closing the descriptor releases the flock
	k.f = nil
	k.state.Close()
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
	state, err := l.OpenState(false)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer state.Close()
	if err := l.StateSubdir(state, lockHoldersDir, false); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	d, err := state.Open(lockHoldersDir)
	if err != nil {
		return nil, err
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
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
			// Removes the entry, a link included, never its target.
			_ = state.Remove(filepath.Join(lockHoldersDir, e.Name()))
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
