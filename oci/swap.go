package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
	"golang.org/x/sys/unix"
)

// The swap puts the staged caches in place by rename (docs/format.md,
// "Restore"). It is transactional: preflightSwap checks, before the journal
// says "swap", everything a rename needs; when a rename fails anyway,
// undoSwap records phase "unswap" and puts back the caches already
// swapped, so the directory holds the old caches or the new, never one of
// each. All renames go through an os.Root on DIR, and every staging
// directory is checked to be a real directory first: the state directory
// is the build's to write, and a planted link must not move a cache (or
// anything else) out of DIR.

// swapDirs checks the staging tree the swap renames through (making the
// directories that are missing: a swap journal whose staging dir is gone
// has nothing left to swap in, and an undo moves new trees back into
// staging/new) and returns a root on DIR, which the staging paths are
// given relative to.
func swapDirs(l mount.Layout) (*os.Root, error) {
	state, err := l.OpenState(false)
	if err != nil {
		return nil, fmt.Errorf("restore swap: %w", err)
	}
	defer state.Close()
	for _, d := range []string{stagingName, filepath.Join(stagingName, "new"), filepath.Join(stagingName, "old")} {
		if err := l.StateSubdir(state, d, true); err != nil {
			return nil, fmt.Errorf("restore swap: %w", err)
		}
	}
	root, err := fsutil.OpenRootNoFollow(l.Dir)
	if err != nil {
		// DIR itself may be a link the user chose: open it as given.
		root, err = os.OpenRoot(l.Dir)
		if err != nil {
			return nil, fmt.Errorf("restore swap: %w", err)
		}
	}
	return root, nil
}

// swapNames are one cache's paths relative to DIR.
type swapNames struct{ live, nw, old string }

func namesFor(l mount.Layout, c mount.Cache) swapNames {
	rel := func(p string) string {
		r, err := filepath.Rel(l.Dir, p)
		if err != nil {
			return p // not below DIR: os.Root refuses it
		}
		return r
	}
	return swapNames{live: rel(l.CacheDir(c)), nw: rel(stagedNew(l, c)), old: rel(stagedOld(l, c))}
}

// lexists reports whether name exists in root; a staged entry that is
// there but is not a real directory is an error (swap never moves a link).
func lexists(root *os.Root, name string, mustBeDir bool) (bool, error) {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if mustBeDir && !fi.IsDir() {
		return true, fmt.Errorf("%s is not a directory (a link or file planted in the staging area); not moving it", filepath.Join(root.Name(), name))
	}
	return true, nil
}

// swapIn moves each staged cache into place; it is idempotent, so recovery
// can run it again after a crash at any point inside it. It stops at the
// first rename that fails; the caller undoes the swap (undoSwap).
func swapIn(l mount.Layout, caches []mount.Cache) error {
	root, err := swapDirs(l)
	if err != nil {
		return err
	}
	defer root.Close()
	for i, c := range caches {
		if c == mount.FetchCache {
			if err := injectedFailure("swap-" + string(c)); err != nil {
				return fmt.Errorf("restore swap: fetch cache in %s: %w", l.Dir, err)
			}
			if err := swapInFetch(root, l); err != nil {
				return err
			}
			continue
		}
		n := namesFor(l, c)
		hasNew, err := lexists(root, n.nw, true)
		if err != nil {
			return fmt.Errorf("restore swap: %w", err)
		}
		if !hasNew {
			continue // already swapped
		}
		hasLive, err := lexists(root, n.live, false)
		if err != nil {
			return fmt.Errorf("restore swap: %w", err)
		}
		if err := injectedFailure("swap-" + string(c)); err != nil {
			return fmt.Errorf("restore swap: move %s: %w", l.CacheDir(c), err)
		}
		if hasLive {
			if hasOld, err := lexists(root, n.old, true); err != nil {
				return fmt.Errorf("restore swap: %w", err)
			} else if hasOld {
				return fmt.Errorf("restore swap: both %s and %s exist; remove %s to roll back", l.CacheDir(c), stagedOld(l, c), journalPath(l))
			}
			if err := swapRename(root, l, n.live, n.old); err != nil {
				return err
			}
		}
		if err := swapRename(root, l, n.nw, n.live); err != nil {
			return err
		}
		if i == 0 {
			crashPoint("pull-swap")
		}
	}
	return fsutil.SyncDir(l.Dir)
}

// swapRename is one rename of the swap; the error names both paths.
func swapRename(root *os.Root, l mount.Layout, from, to string) error {
	if err := root.Rename(from, to); err != nil {
		return fmt.Errorf("restore swap: move %s to %s: %w", filepath.Join(l.Dir, from), filepath.Join(l.Dir, to), err)
	}
	return nil
}

// swapOut undoes swapIn for each cache, last first: the new cache (if it
// is live) goes back to staging/new and the old one (if it was moved out)
// back to its place. It is idempotent: run again after a crash at any point
// inside it, it finishes the undo, so phase "unswap" always recovers to the
// old caches.
func swapOut(l mount.Layout, caches []mount.Cache) error {
	root, err := swapDirs(l)
	if err != nil {
		return err
	}
	defer root.Close()
	for i := len(caches) - 1; i >= 0; i-- {
		c := caches[i]
		if c == mount.FetchCache {
			if err := swapOutFetch(root, l); err != nil {
				return err
			}
			continue
		}
		n := namesFor(l, c)
		hasOld, err1 := lexists(root, n.old, true)
		hasNew, err2 := lexists(root, n.nw, true)
		hasLive, err3 := lexists(root, n.live, false)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("restore undo: %w", err)
		}
		// The new cache is live when staging/new lacks it: take it out.
		if hasLive && !hasNew {
			if err := root.Rename(n.live, n.nw); err != nil {
				return fmt.Errorf("restore undo: move %s back to %s: %w", l.CacheDir(c), stagedNew(l, c), err)
			}
			if hasOld {
				crashPoint("pull-unswap-half") // the cache is missing now
			}
		}
		if hasOld {
			if err := root.Rename(n.old, n.live); err != nil {
				return fmt.Errorf("restore undo: move %s back to %s: %w", stagedOld(l, c), l.CacheDir(c), err)
			}
		}
	}
	return fsutil.SyncDir(l.Dir)
}

// undoSwap records that the swap failed (phase "unswap", with why) and puts
// the old caches back. The error it returns is only about the undo: when
// it is nil the caches are the old ones again and the staging directory
// and journal are gone (or the staging dir is left as reported debris).
func undoSwap(l mount.Layout, j journal, cause error) error {
	j.Phase, j.Error = phaseUnswap, cause.Error()
	if err := writeJournal(l, j); err != nil {
		return fmt.Errorf("%w; recording its undo failed: %v", cause, err)
	}
	crashPoint("pull-unswap")
	if err := swapOut(l, j.Caches); err != nil {
		return fmt.Errorf("%w; undoing it failed too, the journal %s says what to finish: %v", cause, journalPath(l), err)
	}
	return nil
}

// preflightSwap checks, before the journal says "swap", what every rename
// of the swap needs, so that the common failures refuse the pull with the
// caches untouched instead of failing half way: each staged cache and the
// live one are on DIR's filesystem and mount (a cache that is a mount point
// cannot be renamed: EBUSY), and the caller may write DIR, the staging
// dir and each live cache (renaming a directory to another parent rewrites
// its ".."; EACCES otherwise, as when a build user pulls into a root-owned
// DIR). A sticky DIR also needs the caller to own DIR or the cache.
func preflightSwap(l mount.Layout, caches []mount.Cache) error {
	dirID, err := mountOf(l.Dir)
	if err != nil {
		return err
	}
	writable := func(p string) error {
		if err := unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
			return fmt.Errorf("pull into %s: %s is not writable by uid %d (%w): a pull swaps the caches in by rename; run it as the user who owns the caches (or root)", l.Dir, p, os.Geteuid(), err)
		}
		return nil
	}
	for _, p := range []string{l.Dir, stagingDir(l)} {
		if err := writable(p); err != nil {
			return err
		}
	}
	dirFi, err := os.Stat(l.Dir)
	if err != nil {
		return err
	}
	dirUID, _, _ := fsutil.OwnerOf(dirFi)
	for _, c := range caches {
		if c == mount.FetchCache {
			if err := preflightFetch(l); err != nil {
				return err
			}
		}
		for _, p := range []string{stagedNew(l, c), l.CacheDir(c)} {
			if p == "" {
				continue // the fetch cache: its files are DIR's, checked above
			}
			id, err := mountOf(p)
			if errors.Is(err, fs.ErrNotExist) && p == l.CacheDir(c) {
				continue // a new cache: nothing to move out
			} else if err != nil {
				return err
			}
			if id != dirID {
				return fmt.Errorf("pull into %s: %s is a mount point or on another filesystem than %s; a pull swaps the caches in by rename, which cannot move it: unmount it (mount the whole cache dir instead), or restore without swapping (melcache clean, then pull)", l.Dir, p, l.Dir)
			}
			if err := writable(p); err != nil {
				return err
			}
			if dirFi.Mode()&fs.ModeSticky != 0 && os.Geteuid() != 0 && os.Geteuid() != dirUID {
				fi, err := os.Lstat(p)
				if err != nil {
					return err
				}
				if uid, _, _ := fsutil.OwnerOf(fi); uid != os.Geteuid() {
					return fmt.Errorf("pull into %s: %s is not uid %d's in a sticky directory, so it cannot be renamed; run the pull as its owner or root", l.Dir, p, os.Geteuid())
				}
			}
		}
	}
	return nil
}

// mountID identifies the mount a path is on: the mount id where statx
// reports it (a bind mount of the same filesystem has the device of its
// parent but another mount id), else the device.
type mountID struct {
	dev   uint64
	mnt   uint64
	hasID bool
}

func mountOf(p string) (mountID, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st)
	if err != nil {
		return mountID{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	id := mountID{dev: unix.Mkdev(st.Dev_major, st.Dev_minor)}
	if st.Mask&unix.STATX_MNT_ID != 0 {
		id.mnt, id.hasID = st.Mnt_id, true
	}
	return id, nil
}
