package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"time"

	"golang.org/x/sys/unix"
)

type beneath struct {
	dir  *os.File // keeps fd open
	fd   int
	name string // for errors
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
func (b *Beneath) Close() error { return b.dir.Close() }

// open is openat2 beneath the directory with links refused (ELOOP, from
// RESOLVE_NO_SYMLINKS, is reported as ErrLink).
func (b *Beneath) open(name string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Resolve: resolveNoLinks}
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
	fd, err := b.open(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
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

// Lstat reports the entry at name itself (a trailing link is an error
// wrapping ErrLink, as any other link in name).
func (b *Beneath) Lstat(name string) (EntryInfo, error) {
	fd, err := b.open(name, unix.O_PATH)
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
	fi := EntryInfo{name: path.Base(name), size: st.Size, modTime: time.Unix(st.Mtim.Unix())}
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
	return fi, nil
}
