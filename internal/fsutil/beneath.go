package fsutil

import (
	"io/fs"
	"time"
)

// Beneath looks names up inside one directory, in one system call each,
// never following a link at any element of the name: where the kernel
// offers openat2 (Linux 5.6 and later) with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS. It is the hot path of `melcache cacheprog`'s gets,
// where CheckDirsIn plus OpenFileNoFollow's checks (Lstat, open, Stat,
// compare) cost about 20 system calls per entry, and a warm build asks
// for a thousand entries one round trip at a time. OpenBeneath reports
// errors.ErrUnsupported elsewhere; callers keep the os.Root path then.
//
// A link anywhere in a name fails with an error wrapping ErrLink, a name
// whose directory element is a file with syscall.ENOTDIR, and a missing
// one with fs.ErrNotExist. It is safe for concurrent use.
type Beneath struct{ beneath }

// EntryInfo is what a Beneath lookup saw of an entry (fstat of what it
// opened, never of a link's target).
type EntryInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

var _ fs.FileInfo = EntryInfo{}

func (fi EntryInfo) Name() string       { return fi.name }
func (fi EntryInfo) Size() int64        { return fi.size }
func (fi EntryInfo) Mode() fs.FileMode  { return fi.mode }
func (fi EntryInfo) ModTime() time.Time { return fi.modTime }
func (fi EntryInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi EntryInfo) Sys() any           { return nil }
