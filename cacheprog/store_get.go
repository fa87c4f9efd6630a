package cacheprog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
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
	aName := action.name("a")
	f, err := fsutil.OpenFileNoFollow(s.root, aName, os.O_RDONLY, 0)
	if err != nil {
		return Object{}, false, s.missOrError(err, aName)
	}
	// One byte more than an entry, to tell "too long" from "just right".
	b, rerr := io.ReadAll(io.LimitReader(f, mount.ActionEntryLen+1))
	afi, serr := f.Stat()
	f.Close()
	if rerr != nil || serr != nil {
		return Object{}, false, fmt.Errorf("cacheprog: reading %s: %w", s.display(aName), errors.Join(rerr, serr))
	}
	e, err := mount.ParseActionEntry(b, action.String())
	if err != nil {
		return Object{}, false, nil
	}
	out, err := ParseHexID(e.Out)
	if err != nil {
		return Object{}, false, nil
	}
	dName := out.name("d")
	if err := fsutil.CheckDirsIn(s.root, dName); err != nil {
		return Object{}, false, nil // a linked shard: never followed
	}
	dfi, err := s.root.Lstat(dName)
	if err != nil {
		return Object{}, false, s.missOrError(err, dName)
	}
	if !dfi.Mode().IsRegular() || dfi.Size() != e.Size {
		return Object{}, false, nil
	}
	s.markUsed(aName, afi)
	s.markUsed(dName, dfi)
	return Object{OutputID: out, Size: e.Size, Time: e.Time, DiskPath: s.diskPath(dName)}, true, nil
}

// missOrError: a missing entry or shard, a link or file where a shard
// should be, a link where an entry should be, or an entry that is not a
// regular file is a miss, as for Go;
// anything else is an error naming the entry.
func (s *Store) missOrError(err error, name string) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fsutil.ErrLink) {
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
