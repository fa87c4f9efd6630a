package fsutil

import (
	"io/fs"
	"syscall"
)

// OwnerOf returns the numeric user and group recorded in fi, and false where
// the platform does not say (fi.Sys() is not a syscall.Stat_t).
//
// This is the generic part of ownership. Package mount keeps its Owner type,
// CurrentOwner, ParseOwner and the giving of a cache tree to its owner: they
// are about who must own a cache dir, and Owner is in mount's public API.
func OwnerOf(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
