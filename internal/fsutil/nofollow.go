package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// OpenRootNoFollow opens the directory dir as an os.Root without following
// a link at dir's last element: a link there is refused with ErrLink, and
// the directory opened must be the one Lstat saw, so a link swapped in
// between is refused too. The elements above dir are resolved as usual
// (a cache dir may live under a linked /var/cache); the last one is the
// directory a less trusted user may have replaced. Errors name dir.
func OpenRootNoFollow(dir string) (*os.Root, error) {
	lfi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if lfi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s %w", dir, ErrLink)
	}
	if !lfi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	fi, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, err
	}
	if !os.SameFile(lfi, fi) {
		root.Close()
		return nil, fmt.Errorf("%s %w (replaced while opened)", dir, ErrLink)
	}
	return root, nil
}

// CheckDirsIn checks that every directory element of name inside root
// ("snapshots" in "snapshots/x.json") that exists is a real directory, not
// a link: os.Root follows links that stay inside the root, and state
// directories are never links. The error names the link.
func CheckDirsIn(root *os.Root, name string) error {
	dir := filepath.Dir(filepath.Clean(name))
	if dir == "." {
		return nil
	}
	p := ""
	for _, el := range strings.Split(filepath.ToSlash(dir), "/") {
		p = filepath.Join(p, el)
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s %w", filepath.Join(root.Name(), p), ErrLink)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", filepath.Join(root.Name(), p))
		}
	}
	return nil
}

// MkdirIn makes the directory name (one element) inside root when it is
// missing, and checks that what is there is a real directory: a link is
// refused with ErrLink. It reports the directory's FileInfo (Lstat).
func MkdirIn(root *os.Root, name string, perm fs.FileMode) (fs.FileInfo, error) {
	display := filepath.Join(root.Name(), name)
	if err := root.Mkdir(name, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("mkdir %s: %w", display, err)
	}
	fi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s %w", display, ErrLink)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", display)
	}
	return fi, nil
}

// OpenFileNoFollow opens the file name inside root with flag (os.O_RDWR
// etc.) without following a link at name: with os.O_CREATE a missing file
// is created exclusively (O_EXCL, which refuses a link planted in the
// meantime), and an existing one is opened only when Lstat sees a regular
// file and the file opened is that one. A link is refused with ErrLink.
func OpenFileNoFollow(root *os.Root, name string, flag int, perm fs.FileMode) (*os.File, error) {
	display := filepath.Join(root.Name(), name)
	if err := CheckDirsIn(root, name); err != nil {
		return nil, err
	}
	if flag&os.O_CREATE != 0 {
		f, err := root.OpenFile(name, flag|os.O_EXCL, perm)
		if err == nil || !errors.Is(err, fs.ErrExist) || flag&os.O_EXCL != 0 {
			return f, err
		}
		flag &^= os.O_CREATE
	}
	lfi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if lfi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s %w", display, ErrLink)
	}
	if !lfi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", display)
	}
	f, err := root.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || !os.SameFile(lfi, fi) {
		f.Close()
		return nil, fmt.Errorf("%s %w (replaced while opened)", display, ErrLink)
	}
	return f, nil
}
