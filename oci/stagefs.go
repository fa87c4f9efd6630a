package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
	"golang.org/x/sys/unix"
)

// Staged entries are named relative to their staged cache root, held open
// (restorer.roots), not by absolute path. Staging lives in
// DIR/.melcache/staging/new/CACHE, 22 bytes longer than DIR/CACHE: by
// absolute path a file whose final path fits PATH_MAX might not be
// stageable. Relative to the root, the name passed to the kernel is the
// cache-relative path, shorter than the final one. The kernel also walks
// fewer components per call.
//
// For the code that needs a path string (layer extraction, module checks),
// newPath gives the absolute staging path when it fits, else the path
// through the root's descriptor in /proc/self/fd.

// pathMax is Linux's PATH_MAX: a path argument of this many bytes or more
// (with its NUL) fails with ENAMETOOLONG.
const pathMax = 4096

// procFDDir names an open descriptor as a directory.
const procFDDir = "/proc/self/fd/"

func (r *restorer) openRoots() error {
	r.roots = map[mount.Cache]*os.File{}
	for _, c := range r.caches {
		f, err := os.OpenFile(stagedNew(r.l, c), os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		r.roots[c] = f
	}
	return nil
}

func (r *restorer) closeRoots() {
	for c, f := range r.roots {
		f.Close()
		delete(r.roots, c)
	}
}

func (r *restorer) rootFD(c mount.Cache) int { return int(r.roots[c].Fd()) }

// rel turns a cache-relative slash path into the name used with the root
// descriptor ("" is the root itself).
func rel(p string) string {
	if p == "" {
		return "."
	}
	return filepath.FromSlash(p)
}

// stagedPath is the absolute staging path of (c, p), for messages.
func (r *restorer) stagedPath(c mount.Cache, p string) string {
	return filepath.Join(stagedNew(r.l, c), filepath.FromSlash(p))
}

// newPath is a path string naming the staged entry (c, p): the absolute
// staging path when it fits PATH_MAX, else one through the open root.
func (r *restorer) newPath(c mount.Cache, p string) string {
	abs := r.stagedPath(c, p)
	if len(abs) < pathMax || r.roots[c] == nil {
		return abs
	}
	return procFDDir + strconv.Itoa(r.rootFD(c)) + "/" + filepath.FromSlash(p)
}

// livePath is where the entry (c, p) is now.
func (r *restorer) livePath(c mount.Cache, p string) string {
	return filepath.Join(cacheRoot(r.l, c), filepath.FromSlash(p))
}

// stageErr names the staged entry in an error, shortened.
func (r *restorer) stageErr(op string, c mount.Cache, p string, err error) error {
	return &fs.PathError{Op: op, Path: fsutil.ShortPath(r.stagedPath(c, p)), Err: err}
}

// mkdir creates the staged directory (c, p) and any missing parents.
func (r *restorer) mkdir(c mount.Cache, p string) error {
	err := unix.Mkdirat(r.rootFD(c), rel(p), 0o755)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return r.stageErr("mkdir", c, p, err)
	}
	if d := pathDir(p); d != "" {
		if err := r.mkdir(c, d); err != nil {
			return err
		}
	}
	if err := unix.Mkdirat(r.rootFD(c), rel(p), 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return r.stageErr("mkdir", c, p, err)
	}
	return nil
}

func pathDir(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

// link stages the local file (c, p) by hard link, or by a copy keeping its
// mode where links are not possible.
func (r *restorer) link(c mount.Cache, p string) error {
	live := r.livePath(c, p)
	err := unix.Linkat(unix.AT_FDCWD, live, r.rootFD(c), rel(p), 0)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EMLINK) {
		return fmt.Errorf("stage %s: %w", fsutil.ShortPath(live), err)
	}
	return r.copyIn(c, p, 0, "")
}

// copyFile stages the local copy of snapshot file e with e's mode, checking
// its content against the index as it is copied.
func (r *restorer) copyFile(e *Entry) error {
	return r.copyIn(e.Cache, e.Path, fs.FileMode(e.Mode), e.SHA256)
}

// copyIn copies the local file (c, p) into staging. With sum set, the copy
// gets mode and its content is checked against sum; without, it keeps the
// local file's mode.
func (r *restorer) copyIn(c mount.Cache, p string, mode fs.FileMode, sum string) error {
	live := r.livePath(c, p)
	src, err := os.OpenFile(live, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("stage %s: %w", fsutil.ShortPath(live), err)
	}
	defer src.Close()
	if sum == "" {
		fi, err := src.Stat()
		if err != nil {
			return err
		}
		mode = fi.Mode().Perm()
	}
	dst, err := r.create(c, p, mode|0o200)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(dst, h), src)
	if err == nil && sum != "" && hex.EncodeToString(h.Sum(nil)) != sum {
		err = fmt.Errorf("%s changed while it was being restored", fsutil.ShortPath(live))
	}
	if err == nil {
		err = dst.Chmod(mode)
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}

// create makes the staged file (c, p), which must not exist.
func (r *restorer) create(c mount.Cache, p string, mode fs.FileMode) (*os.File, error) {
	fd, err := unix.Openat(r.rootFD(c), rel(p), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode))
	if err != nil {
		return nil, r.stageErr("create", c, p, err)
	}
	return os.NewFile(uintptr(fd), r.stagedPath(c, p)), nil
}

// writeNew writes a new staged file (c, p), replacing any staged entry of
// that name (a link to a live file must not be written through).
func (r *restorer) writeNew(c mount.Cache, p string, data []byte, mode fs.FileMode) error {
	if err := unix.Unlinkat(r.rootFD(c), rel(p), 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return r.stageErr("replace", c, p, err)
	}
	f, err := r.create(c, p, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && umask()&mode != 0 {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r *restorer) chmod(c mount.Cache, p string, mode fs.FileMode) error {
	if err := unix.Fchmodat(r.rootFD(c), rel(p), uint32(mode), 0); err != nil {
		return r.stageErr("chmod", c, p, err)
	}
	return nil
}

func (r *restorer) chtimes(c mount.Cache, p string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.UtimesNanoAt(r.rootFD(c), rel(p), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return r.stageErr("chtimes", c, p, err)
	}
	return nil
}

func (r *restorer) lchown(c mount.Cache, p string, fo *fileOwner) error {
	if err := unix.Fchownat(r.rootFD(c), rel(p), fo.uid, fo.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return r.stageErr("chown", c, p, err)
	}
	return nil
}
