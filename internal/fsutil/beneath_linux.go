package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

type beneath struct {
	dir  *os.File // keeps fd open
	fd   int
	name string // for errors

	// subdirs holds O_PATH descriptors of the one-element directories
	// Lstat has looked in (a GOCACHE's 256 shards), opened beneath with
	// links refused, so that Lstat is one fstatat instead of openat2,
	// fstat and close. A descriptor keeps naming the directory it opened
	// even when that one is renamed or removed: Lstat checks it again
	// before it reports a missing entry (see subdirStat). mu is held
	// for reading while a descriptor is used, so that one replaced by a
	// concurrent lookup (or Close) is not closed under it, nor its number
	// reused by another open meanwhile.
	mu      sync.RWMutex
	subdirs map[string]int
}

// resolveNoLinks makes openat2 refuse a name that leaves the directory or
// crosses a link (symbolic or /proc magic) at any element, the last one
// included, instead of the element-by-element checks of the os.Root path.
const resolveNoLinks = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// OpenBeneath opens root's directory for Beneath lookups; it returns an
// error wrapping errors.ErrUnsupported where openat2 is missing (an old
// kernel, or a seccomp filter that refuses it).
func OpenBeneath(root *os.Root) (*Beneath, error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	b := &Beneath{beneath{dir: f, fd: int(f.Fd()), name: root.Name()}}
	fd, err := b.open(".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("openat2 on %s: %w (%w)", root.Name(), err, errors.ErrUnsupported)
	}
	unix.Close(fd)
	return b, nil
}

// Close closes the directory.
func (b *Beneath) Close() error {
	b.mu.Lock()
	for _, fd := range b.subdirs {
		unix.Close(fd)
	}
	b.subdirs = nil
	b.mu.Unlock()
	return b.dir.Close()
}

// open is openat2 beneath the directory with links refused (ELOOP, from
// RESOLVE_NO_SYMLINKS, is reported as ErrLink). The one exception is
// the kernel's: O_PATH|O_NOFOLLOW opens a trailing link itself.
func (b *Beneath) open(name string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveNoLinks}
	for {
		fd, err := unix.Openat2(b.fd, name, &how)
		switch err {
		case nil:
			return fd, nil
		case unix.EINTR, unix.EAGAIN:
			continue // EAGAIN: a concurrent rename raced the lookup
		case unix.ELOOP:
			return -1, fmt.Errorf("%s %w", b.display(name), ErrLink)
		}
		return -1, &fs.PathError{Op: "openat2", Path: b.display(name), Err: err}
	}
}

func (b *Beneath) display(name string) string { return path.Join(b.name, name) }

// ReadSmall reads at most max bytes of the regular file name and reports
// what it opened. A name that is not a regular file is not read: its
// EntryInfo comes back with a nil slice, and the caller checks Mode. The
// open is non-blocking, so a FIFO planted at name cannot hang the reader.
func (b *Beneath) ReadSmall(name string, max int) ([]byte, EntryInfo, error) {
	fd, err := b.open(name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, EntryInfo{}, err
	}
	defer unix.Close(fd)
	fi, err := b.fstat(fd, name)
	if err != nil || !fi.mode.IsRegular() {
		return nil, fi, err
	}
	// Reading exactly the size fstat saw (when it is under max) ends in
	// one read, without a second read to see the end.
	want := max
	if fi.size < int64(max) {
		want = int(fi.size)
	}
	buf := make([]byte, want)
	n := 0
	for n < want {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		} else if err != nil {
			return nil, fi, &fs.PathError{Op: "read", Path: b.display(name), Err: err}
		} else if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], fi, nil
}

// Lstat reports the entry at name itself: a trailing link is reported as
// a link (or refused with ErrLink), never followed, and a link at any
// other element is refused with ErrLink.
func (b *Beneath) Lstat(name string) (EntryInfo, error) {
	if dir, base, ok := strings.Cut(name, "/"); ok && !strings.Contains(base, "/") && dir != "." && dir != ".." && base != "." && base != ".." {
		return b.subdirStat(dir, base, name)
	}
	fd, err := b.open(name, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return EntryInfo{}, err
	}
	defer unix.Close(fd)
	return b.fstat(fd, name)
}

func (b *Beneath) fstat(fd int, name string) (EntryInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return EntryInfo{}, &fs.PathError{Op: "fstat", Path: b.display(name), Err: err}
	}
	return statInfo(&st, path.Base(name)), nil
}

func statInfo(st *unix.Stat_t, base string) EntryInfo {
	fi := EntryInfo{name: base, size: st.Size, modTime: time.Unix(st.Mtim.Unix())}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		fi.mode = fs.ModeDir
	case unix.S_IFLNK:
		fi.mode = fs.ModeSymlink
	default:
		fi.mode = fs.ModeIrregular
	}
	fi.mode |= fs.FileMode(st.Mode & 0o777)
	return fi
}

// subdirStat is Lstat of dir/base through the cached descriptor of dir.
// A missing entry is checked again against the directory dir names now
// (a shard removed and made again, as by go clean -cache, leaves the
// cached descriptor on a directory that is gone): when that is another
// directory, the cache takes it and the lookup is made again.
func (b *Beneath) subdirStat(dir, base, name string) (EntryInfo, error) {
	for retried := false; ; retried = true {
		var st unix.Stat_t
		err := b.inSubdir(dir, retried, func(dfd int) error {
			if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return &fs.PathError{Op: "fstatat", Path: b.display(name), Err: err}
			}
			return nil
		})
		if err == nil {
			return statInfo(&st, base), nil
		}
		if retried || !errors.Is(err, fs.ErrNotExist) {
			return EntryInfo{}, err
		}
	}
}

// inSubdir calls f with the cached descriptor of dir, which stays open
// while f runs: under the read lock when it is cached and not fresh,
// else under the write lock once subdir has opened (or, fresh, checked)
// it.
func (b *Beneath) inSubdir(dir string, fresh bool, f func(dfd int) error) error {
	if !fresh {
		b.mu.RLock()
		fd, ok := b.subdirs[dir]
		if ok {
			defer b.mu.RUnlock()
			return f(fd)
		}
		b.mu.RUnlock()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fd, err := b.subdir(dir, fresh)
	if err != nil {
		return err
	}
	return f(fd)
}

// subdir returns the cached descriptor of dir, opening it when missing;
// with fresh, it opens dir again and replaces a cached descriptor that
// names another directory. b.mu is held for writing.
func (b *Beneath) subdir(dir string, fresh bool) (int, error) {
	old, ok := b.subdirs[dir]
	if ok && !fresh {
		return old, nil
	}
	fd, err := b.open(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	if ok {
		var a, c unix.Stat_t
		if unix.Fstat(old, &a) == nil && unix.Fstat(fd, &c) == nil && a.Dev == c.Dev && a.Ino == c.Ino {
			unix.Close(fd)
			return old, nil
		}
		unix.Close(old)
	}
	if b.subdirs == nil {
		b.subdirs = map[string]int{}
	}
	b.subdirs[dir] = fd
	return fd, nil
}
