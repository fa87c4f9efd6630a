package fsutil

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Owner is a numeric user and group. Package mount's Owner (the owner cache
// files must belong to) is this type; what belongs to cache dirs (parsing
// --owner, giving a cache tree to its owner) stays in mount.
type Owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

func (o Owner) String() string { return fmt.Sprintf("%d:%d", o.UID, o.GID) }

// CurrentOwner is the invoking process's user and group.
func CurrentOwner() Owner { return Owner{UID: os.Getuid(), GID: os.Getgid()} }

// OwnerOf returns the owner recorded in fi, and false where the platform
// does not say (fi.Sys() is not a syscall.Stat_t).
func OwnerOf(fi fs.FileInfo) (Owner, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{}, false
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid)}, true
}

// Lchown gives path (a link itself, not its target) to o. The error names
// the path and the owner.
func (o Owner) Lchown(path string) error {
	if err := os.Lchown(path, o.UID, o.GID); err != nil {
		return fmt.Errorf("give %s to %s: %w", path, o, err)
	}
	return nil
}
