package mount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// GoCacheREADME is the README that the go command writes into a new GOCACHE
// (cmd/go/internal/cache/default.go, cacheREADME), byte for byte. prepare
// writes it so the directory explains itself before Go has run in it.
const GoCacheREADME = `This directory holds cached build artifacts from the Go build system.
Run "go clean -cache" if the directory is getting too large.
Run "go clean -fuzzcache" to delete the fuzz cache.
See go.dev to learn more about Go.
`

// dirPerm is the mode of the directories prepare creates. Go creates its
// cache directories 0777 minus umask; 0755 keeps the caches readable by all
// and writable by their owner, the user who runs melange.
const dirPerm = 0o755

// PrepareOptions configure Prepare.
type PrepareOptions struct {
	// Owner receives the directories prepare creates and every file in the
	// caches it manages. Nil means the invoking user (CurrentOwner).
	Owner *Owner
	// FromHost, when set, is a module cache (the host's `go env
	// GOMODCACHE`) whose cache/download tree seeds the layout's module
	// cache.
	FromHost string
	// Lock is a lock the caller already holds, or nil.
	Lock *Lock
	// LockOptions apply when Prepare takes the lock itself.
	LockOptions LockOptions
	// Log receives progress; nil discards it.
	Log *slog.Logger
	// Caches are the caches to create; nil means the Go caches
	// (Layout.Caches), as before there were others. The fetch cache has no
	// directory: naming it creates nothing.
	Caches []Cache
}

// PrepareResult says what Prepare did.
type PrepareResult struct {
	// Created lists the paths created, in creation order.
	Created []string `json:"created"`
	// Chowned counts entries whose owner changed.
	Chowned int `json:"chowned"`
	// Owner is the owner the caches now have.
	Owner Owner `json:"owner"`
	// Seeded reports --from-host seeding, nil when not asked.
	Seeded *SeedResult `json:"seeded,omitempty"`
	// Warnings are problems Prepare found but may not fix, such as a
	// cache directory (not created by melcache) that the owner cannot
	// enter.
	Warnings []string `json:"warnings,omitempty"`
}

// Changed reports whether Prepare changed anything.
func (r *PrepareResult) Changed() bool {
	return len(r.Created) > 0 || r.Chowned > 0 || (r.Seeded != nil && r.Seeded.Linked+r.Seeded.Copied > 0)
}

// Prepare creates the layout: the cache directory (its parent must exist, so
// that a mistyped path fails instead of growing a tree), the caches asked
// for (o.Caches; the Go caches by default), the
// state directory and Go's README in the build cache, all owned by
// o.Owner. It is idempotent: a second run changes nothing. Nothing in the
// directory that is not melcache's is read or changed. Every check runs
// before the first change, so an error leaves the filesystem as it was.
func (l Layout) Prepare(ctx context.Context, o PrepareOptions) (*PrepareResult, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	owner := CurrentOwner()
	if o.Owner != nil {
		owner = *o.Owner
	}
	res := &PrepareResult{Owner: owner}
	if o.Caches == nil {
		o.Caches = l.Caches()
	}
	dirExists, err := l.checkPrepare(owner, o)
	if err != nil {
		return nil, err
	}

	mkdir := func(p string, chown bool) error {
		if err := os.Mkdir(p, dirPerm); err != nil {
			if errors.Is(err, fs.ErrExist) {
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					return nil
				}
				return fmt.Errorf("%s exists and is not a directory", p)
			}
			return err
		}
		res.Created = append(res.Created, p)
		log.Debug("created", "path", p)
		if chown {
			if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
				return fmt.Errorf("give %s to %s: %w", p, owner, err)
			}
		}
		return nil
	}
	if !dirExists {
		if err := mkdir(l.Dir, true); err != nil {
			return nil, fmt.Errorf("create cache directory: %w", err)
		}
	}
	if l.Mode == Split {
		if err := mkdir(l.State, true); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(l.State, dirPerm); err != nil {
		return nil, fmt.Errorf("recipe-mode state directory: %w", err)
	}
	release, err := l.Acquire(ctx, o.Lock, Exclusive, o.LockOptions)
	if err != nil {
		return nil, err
	}
	defer release()

	for _, p := range l.dirsOf(o.Caches) {
		if p != l.Dir {
			if err := mkdir(p, true); err != nil {
				return nil, err
			}
		}
	}
	if gc := l.CacheDir(GoCache); gc != "" && slices.Contains(o.Caches, GoCache) {
		readme := filepath.Join(gc, goCacheREADME)
		if _, err := os.Lstat(readme); errors.Is(err, fs.ErrNotExist) {
			// Go writes it 0666 minus umask; so do we.
			if err := os.WriteFile(readme, []byte(GoCacheREADME), 0o666); err != nil {
				return nil, fmt.Errorf("write %s: %w", readme, err)
			}
			res.Created = append(res.Created, readme)
		}
	}
	if o.FromHost != "" {
		s, err := seedModCache(ctx, o.FromHost, l.CacheDir(GoModCache), owner, log)
		res.Seeded = &s
		if err != nil {
			return res, err
		}
	}
	// Give everything melcache manages to the owner: files written by an
	// earlier root build or copied in would otherwise stay out of reach of
	// the build user, and Go would silently fail to refresh their use marks.
	roots := l.dirsOf(o.Caches)
	if l.Mode == Split {
		roots = append(roots, l.State)
	}
	for _, r := range roots {
		n, err := chownTree(r, owner)
		res.Chowned += n
		if err != nil {
			return res, err
		}
	}
	if fi, err := os.Stat(l.Dir); err == nil && !canEnter(fi, owner) {
		res.Warnings = append(res.Warnings, fmt.Sprintf(
			"%s (mode %04o) cannot be entered by the owner %s: builds running as that user will not reach the caches; chmod a+x %s",
			l.Dir, fi.Mode().Perm(), owner, l.Dir))
	}
	return res, nil
}

// checkPrepare runs Prepare's checks, before anything changes: the caller
// may give files to owner, the cache directory is writable or can be
// created in its parent (dirExists reports whether it exists), melcache's
// entries in it are directories, and o.FromHost holds a module cache.
func (l Layout) checkPrepare(owner Owner, o PrepareOptions) (dirExists bool, err error) {
	if err := checkCanChown(owner); err != nil {
		return false, err
	}
	if err := l.checkCaches(o.Caches); err != nil {
		return false, err
	}
	dirExists, err = l.checkDir()
	if err != nil {
		return false, err
	}
	if dirExists {
		for _, p := range append(l.dirsOf(o.Caches), l.State) {
			if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
				return false, fmt.Errorf("%s exists and is not a directory; melcache will not replace it", p)
			}
		}
	}
	if o.FromHost != "" && !slices.Contains(o.Caches, GoModCache) {
		return false, fmt.Errorf("--from-host seeds gomodcache, which is not among the caches to prepare (%s)", joinCaches(o.Caches))
	}
	if o.FromHost != "" {
		if fi, err := os.Stat(downloadDir(o.FromHost)); err != nil {
			return false, fmt.Errorf("--from-host: host module cache %s: %w", o.FromHost, err)
		} else if !fi.IsDir() {
			return false, fmt.Errorf("--from-host: %s is not a directory", downloadDir(o.FromHost))
		}
	}
	return dirExists, nil
}

// canEnter reports whether o may traverse the directory fi describes, by its
// permission bits (root may always).
func canEnter(fi fs.FileInfo, o Owner) bool {
	cur, ok := ownerOf(fi)
	perm := fi.Mode().Perm()
	switch {
	case !ok || o.UID == 0:
		return true
	case cur.UID == o.UID:
		return perm&0o100 != 0
	case cur.GID == o.GID:
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

// checkDir checks that the cache directory can be prepared: it is a writable
// directory, or it is missing and its parent is a writable directory. It
// reports whether the directory exists.
func (l Layout) checkDir() (bool, error) {
	fi, err := os.Stat(l.Dir)
	switch {
	case err == nil && !fi.IsDir():
		return false, fmt.Errorf("cache directory %s: not a directory", l.Dir)
	case err == nil:
		if err := unix.Access(l.Dir, unix.W_OK|unix.X_OK); err != nil {
			return true, fmt.Errorf("cache directory %s: not writable: %w", l.Dir, err)
		}
		return true, nil
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR):
		return false, fmt.Errorf("cache directory %s: %w", l.Dir, err)
	}
	parent := filepath.Dir(l.Dir)
	pfi, err := os.Stat(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("cache directory %s: parent directory %s does not exist (melcache creates the cache directory, not its parents)", l.Dir, parent)
	} else if err != nil {
		return false, fmt.Errorf("cache directory %s: %w", l.Dir, err)
	} else if !pfi.IsDir() {
		return false, fmt.Errorf("cache directory %s: parent %s is not a directory", l.Dir, parent)
	}
	if err := unix.Access(parent, unix.W_OK|unix.X_OK); err != nil {
		return false, fmt.Errorf("cache directory %s: cannot create it, parent %s not writable: %w", l.Dir, parent, err)
	}
	return false, nil
}

// checkCanChown fails early when the process may not give files to owner:
// only root may give files to another user, and others only to their own
// groups.
func checkCanChown(owner Owner) error {
	if os.Geteuid() == 0 {
		return nil
	}
	if owner.UID != os.Geteuid() {
		return fmt.Errorf("owner %s: only root can give files to another user (run as uid %d, or as root)", owner, owner.UID)
	}
	groups, _ := os.Getgroups()
	if owner.GID != os.Getegid() && !slices.Contains(groups, owner.GID) {
		return fmt.Errorf("owner %s: not a member of group %d", owner, owner.GID)
	}
	return nil
}

// checkExists fails when the cache directory does not exist or is not a
// directory: the read-only commands and those that change an existing cache
// need a prepared directory.
func (l Layout) checkExists() error {
	fi, err := os.Stat(l.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache directory %s does not exist (run melcache prepare)", l.Dir)
	} else if err != nil {
		return fmt.Errorf("cache directory %s: %w", l.Dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("cache directory %s: not a directory", l.Dir)
	}
	return nil
}

// cacheDirs lists the host paths of l's Go caches.
func cacheDirs(l Layout) []string { return l.dirsOf(l.Caches()) }
