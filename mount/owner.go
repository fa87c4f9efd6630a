package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/melcache/melcache/internal/fsutil"
)

// Owner is the numeric user and group that cache files must belong to.
type Owner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

func (o Owner) String() string { return fmt.Sprintf("%d:%d", o.UID, o.GID) }

// CurrentOwner is the invoking user and group: the default owner, since the
// user who runs melcache is usually the one who runs melange (docs/background.md,
// "Ownership").
func CurrentOwner() Owner { return Owner{UID: os.Getuid(), GID: os.Getgid()} }

// maxID bounds numeric ids: Linux ids are 32-bit and (uid_t)-1 means "no
// change" to chown(2), so it is not a valid owner.
const maxID = 1<<32 - 2

// ParseOwner parses "UID:GID" or "UID" (the group then equals the uid, as
// melange's build user is 1000:1000). Only numeric ids are accepted: inside
// the build environment names resolve against a different /etc/passwd.
func ParseOwner(s string) (Owner, error) {
	us, gs, hasGroup := strings.Cut(s, ":")
	if !hasGroup {
		gs = us
	}
	u, err1 := strconv.ParseUint(us, 10, 64)
	g, err2 := strconv.ParseUint(gs, 10, 64)
	if err1 != nil || err2 != nil || u > maxID || g > maxID {
		return Owner{}, fmt.Errorf("invalid owner %q: want numeric UID:GID, e.g. 1000:1000", s)
	}
	return Owner{UID: int(u), GID: int(g)}, nil
}

// ownerOf returns the owner of fi.
func ownerOf(fi fs.FileInfo) (Owner, bool) {
	uid, gid, ok := fsutil.OwnerOf(fi)
	return Owner{UID: uid, GID: gid}, ok
}

// chownTree gives every entry under root (root included) to o, touching only
// entries owned by someone else so that a second run changes nothing. It
// returns how many entries changed owner. The lock holders' markers
// (lock.d/PID.MODE) are skipped: they live only as long as their process.
func chownTree(root string, o Owner) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if cur, ok := ownerOf(fi); (ok && cur == o) || (!d.IsDir() && filepath.Base(filepath.Dir(p)) == lockHoldersDir) {
			return nil
		}
		if err := os.Lchown(p, o.UID, o.GID); err != nil {
			return fmt.Errorf("give %s to %s: %w", p, o, err)
		}
		n++
		return nil
	})
	return n, err
}
