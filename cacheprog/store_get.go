package cacheprog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// useMarkInterval is how stale a use mark (mtime) must be before a hit
// refreshes it: Go's mtimeInterval (cmd/go/internal/cache), which
// `melcache mark` and status's hit counts rely on.
const useMarkInterval = time.Hour

// getLocal looks action up in the GOCACHE dir as Go's DiskCache.get does:
// a well-formed "-a" entry naming action, whose "-d" output is a regular
// file of the recorded size. Anything else (missing, malformed, a link, a
// directory) is a miss, as it is for Go; only an I/O failure is an error.
func (s *Store) getLocal(action ID) (Object, bool, error) {
	obj, afi, dfi, ok, err := s.findLocal(action)
	if ok {
		s.markUsed(action.name("a"), afi)
		s.markUsed(obj.OutputID.name("d"), dfi)
	}
	return obj, ok, err
}

// findLocal is getLocal without the use marks: the object, and its -a and
// -d entries as checked.
func (s *Store) findLocal(action ID) (obj Object, afi, dfi fs.FileInfo, ok bool, err error) {
	aName := action.name("a")
	// One byte more than an entry, to tell "too long" from "just right".
	b, afi, err := s.readEntry(aName, mount.ActionEntryLen+1)
	if err != nil {
		return Object{}, nil, nil, false, s.missOrError(err, aName)
	}
	if !afi.Mode().IsRegular() {
		return Object{}, nil, nil, false, nil
	}
	e, err := mount.ParseActionEntry(b, action.String())
	if err != nil {
		return Object{}, nil, nil, false, nil
	}
	out, err := ParseHexID(e.Out)
	if err != nil {
		return Object{}, nil, nil, false, nil
	}
	dName := out.name("d")
	dfi, err = s.statEntry(dName)
	if err != nil {
		return Object{}, nil, nil, false, s.missOrError(err, dName)
	}
	if !dfi.Mode().IsRegular() || dfi.Size() != e.Size {
		return Object{}, nil, nil, false, nil
	}
	return Object{OutputID: out, Size: e.Size, Time: e.Time, DiskPath: s.diskPath(dName)}, afi, dfi, true, nil
}

// readEntry reads at most max bytes of the entry name, following no link
// at the shard or the entry; fi is what was read (a caller checks it is a
// regular file: the slice is nil otherwise).
func (s *Store) readEntry(name string, max int) ([]byte, fs.FileInfo, error) {
	if s.beneath != nil {
		return s.beneath.ReadSmall(name, max)
	}
	f, err := fsutil.OpenFileNoFollow(s.root, name, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, rerr := io.ReadAll(io.LimitReader(f, int64(max)))
	fi, serr := f.Stat()
	if err := errors.Join(rerr, serr); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", s.display(name), err)
	}
	return b, fi, nil
}

// statEntry is the entry name itself (never a link's target), found
// without following a link at its shard.
func (s *Store) statEntry(name string) (fs.FileInfo, error) {
	if s.beneath != nil {
		return s.beneath.Lstat(name)
	}
	if err := fsutil.CheckDirsIn(s.root, name); err != nil {
		return nil, err
	}
	return s.root.Lstat(name)
}

// missOrError: a missing entry or shard, a link or file where a shard
// should be, a link where an entry should be, or an entry that is not a
// regular file is a miss, as for Go;
// anything else is an error naming the entry.
func (s *Store) missOrError(err error, name string) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fsutil.ErrLink) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if fi, lerr := s.root.Lstat(path.Dir(name)); lerr == nil && !fi.IsDir() {
		return nil // a file or link planted where the shard should be
	}
	if fi, lerr := s.root.Lstat(name); lerr == nil && !fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("cacheprog: %s: %w", s.display(name), err)
}

// markUsed refreshes a stale use mark as Go's DiskCache.markUsed does
// (best effort). fi is the entry as it was checked (a regular file); the
// name resolves inside the root, so a link swapped in meanwhile can at
// worst touch another entry's mtime.
func (s *Store) markUsed(name string, fi fs.FileInfo) {
	if now := s.now(); now.Sub(fi.ModTime()) >= useMarkInterval {
		_ = s.root.Chtimes(name, now, now)
	}
}
