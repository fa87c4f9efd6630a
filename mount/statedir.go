package mount

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/melcache/melcache/internal/fsutil"
)

// The state directory is written by an untrusted user. In split mode it is
// DIR/.melcache, and melange mounts DIR read-write into the build, so
// whatever the build runs (go generate, tests, a dependency's build step)
// may replace any entry under it, while melcache itself often runs as
// root. Every state file and directory is therefore opened relative to the
// verified state directory (an os.Root), without following links, and
// created exclusively; see docs/security.md, "The build controls the cache
// dir's content".

// stateDirPerm is the mode of the state directory and its subdirectories:
// readable by all, as the caches are.
const stateDirPerm = 0o755

// UntrustedError reports a state entry that melcache refuses to use: a link
// (melcache never makes one), or an entry owned by a user melcache does not
// recognise.
type UntrustedError struct {
	Path   string
	Reason string
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("%s %s; refusing to use it (remove it if it is not yours)", e.Path, e.Reason)
}

// trustedOwners are the users whose entries in the state directory
// melcache uses: root, the caller, DIR's owner, the owners of the caches'
// roots and of the state directory itself (prepare gives the caches and
// the state to the user who runs melange, who may differ from DIR's owner:
// a root-owned DIR with caches given to the build user). Only root can
// make a file another user's, so an entry owned by anyone else was put
// there by a third user who may write the state directory without owning
// it.
func (l Layout) trustedOwners() map[int]bool {
	t := map[int]bool{0: true, os.Geteuid(): true}
	add := func(p string) {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			if uid, _, ok := fsutil.OwnerOf(fi); ok {
				t[uid] = true
			}
		}
	}
	add(l.Dir)
	add(l.State)
	for _, c := range l.Caches() {
		add(l.CacheDir(c))
	}
	return t
}

// checkEntry refuses a state entry that is a link or has an untrusted
// owner.
func (l Layout) checkEntry(fi fs.FileInfo, path string) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &UntrustedError{Path: path, Reason: "is a symbolic link, which melcache never makes"}
	}
	if uid, _, ok := fsutil.OwnerOf(fi); ok && !l.trustedOwners()[uid] {
		return &UntrustedError{Path: path, Reason: fmt.Sprintf("is owned by uid %d, neither the caller, root, nor the owner of %s or its caches", uid, l.Dir)}
	}
	return nil
}

// OpenState opens the state directory as an os.Root, after checking that
// it is a real directory, not a link. With create
// a missing state directory is made (in split mode one level, inside the
// existing DIR); without it a missing one is an error wrapping
// fs.ErrNotExist. The caller closes the root.
func (l Layout) OpenState(create bool) (*os.Root, error) {
	if create {
		mk := os.Mkdir
		if l.Mode == Recipe {
			mk = os.MkdirAll // under the user's own cache dir
		}
		if err := mk(l.State, stateDirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("state directory: %w", err)
		}
	}
	// The directory itself: never a link. Its owner is the one trusted
	// for its entries (trustedOwners), so it is not checked against them.
	root, err := fsutil.OpenRootNoFollow(l.State)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return root, nil
}

// StateSubdir makes (when create) and checks the directory name directly
// inside the state directory opened as root: it must be a real directory
// owned by a trusted user. It returns fs.ErrNotExist (wrapped) when the
// directory is missing and create is false.
func (l Layout) StateSubdir(root *os.Root, name string, create bool) error {
	display := filepath.Join(l.State, name)
	if create {
		fi, err := fsutil.MkdirIn(root, name, stateDirPerm) // refuses a link
		if err != nil {
			return err
		}
		return l.checkEntry(fi, display)
	}
	fi, err := root.Lstat(name)
	if err != nil {
		return fmt.Errorf("%s: %w", display, err)
	}
	if err := l.checkEntry(fi, display); err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", display)
	}
	return nil
}

// ReadState decodes the JSON state file name (e.g. "snapshots/x.json")
// into a new T, or returns nil, nil when it (or the state directory) is
// missing. Links at name or at its directories, and entries owned by an
// untrusted user, are refused.
func ReadState[T any](l Layout, name string) (*T, error) {
	root, err := l.openStateFile(name)
	if root == nil || err != nil {
		return nil, err
	}
	defer root.Close()
	return fsutil.ReadJSONIn[T](root, name)
}

// openStateFile opens the state directory for reading name after checking
// name's path (no links, no untrusted owners). It returns a nil root and
// no error when name or the state directory is missing.
func (l Layout) openStateFile(name string) (*os.Root, error) {
	root, err := l.OpenState(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if err := l.checkPath(root, name); err != nil {
		root.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return root, nil
}

// WriteState writes v as the JSON state file name with fsutil.WriteJSONIn
// (atomic, never through a link), creating the state directory and name's
// directories when missing. o.CreateDirs is implied.
func WriteState(l Layout, name string, v any, o fsutil.WriteOptions) error {
	return l.writeStateIn(name, func(root *os.Root) error {
		o.CreateDirs = false
		return fsutil.WriteJSONIn(root, name, v, o)
	})
}

// writeStateIn opens the state directory (creating it and name's
// directories when missing, each checked as StateSubdir checks it) and
// calls write with it: the one path WriteState and WriteStateBytes share.
func (l Layout) writeStateIn(name string, write func(root *os.Root) error) error {
	root, err := l.OpenState(true)
	if err != nil {
		return err
	}
	defer root.Close()
	if d := filepath.Dir(filepath.Clean(name)); d != "." {
		if err := l.StateSubdir(root, d, true); err != nil {
			return err
		}
	}
	return write(root)
}

// checkPath checks each element of name inside root with checkEntry.
func (l Layout) checkPath(root *os.Root, name string) error {
	p := ""
	for _, el := range splitPath(name) {
		p = filepath.Join(p, el)
		fi, err := root.Lstat(p)
		if err != nil {
			return err
		}
		if err := l.checkEntry(fi, filepath.Join(l.State, p)); err != nil {
			return err
		}
	}
	return nil
}

func splitPath(name string) []string {
	var out []string
	for d := filepath.Clean(name); d != "." && d != string(filepath.Separator); d = filepath.Dir(d) {
		out = append([]string{filepath.Base(d)}, out...)
	}
	return out
}

// ReadStateBytes reads the state file name (e.g. "statcache"), or returns
// nil, nil when it (or the state directory) is missing. It is ReadState
// for files that are not JSON: links at name or at its directories, entries
// owned by an untrusted user, and files over limit bytes are refused.
func ReadStateBytes(l Layout, name string, limit int64) ([]byte, error) {
	root, err := l.openStateFile(name)
	if root == nil || err != nil {
		return nil, err
	}
	defer root.Close()
	display := filepath.Join(l.State, name)
	f, err := fsutil.OpenFileNoFollow(root, name, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", display, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", display, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", display, limit)
	}
	return b, nil
}

// WriteStateBytes writes data as the state file name with
// fsutil.WriteFileIn (atomic, never through a link), creating the state
// directory when missing. It is WriteState for files that are not JSON.
func WriteStateBytes(l Layout, name string, data []byte, o fsutil.WriteOptions) error {
	return l.writeStateIn(name, func(root *os.Root) error {
		o.CreateDirs = false
		return fsutil.WriteFileIn(root, name, data, o)
	})
}
