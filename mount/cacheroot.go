package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrCacheRootLink is returned (wrapped) for a cache root that is a
// symbolic link. melcache refuses such a root in every command rather than
// follow it (docs/security.md, "Symlinked cache roots"):
//   - following it as root lets whoever can write DIR (the build) point a
//     push at any host directory and publish it, or a pull's swap at any
//     host directory and replace it;
//   - a swap renames the root, so it would replace the link with a
//     directory and the files behind the link would drop out of the cache;
//   - Go itself follows the link, so refusing keeps push, pull and status
//     agreeing on what the cache holds (nothing is silently skipped).
var ErrCacheRootLink = errors.New("cache root is a symbolic link")

// CheckCacheRoot returns an error naming the path when cache c's root
// exists and is not a directory, or is a symbolic link. A missing root is
// fine (pull creates it). In recipe mode the module cache root is DIR
// itself, a path the user chose: it is not checked.
func (l Layout) CheckCacheRoot(c Cache) error {
	p := l.CacheDir(c)
	if p == "" || l.Mode == Recipe {
		return nil
	}
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("cache %s: %w", p, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		return fmt.Errorf("%s: %w (to %q); melcache does not follow it: move the files into a directory at %s, or put the whole cache dir on the other disk (--dir)",
			p, ErrCacheRootLink, target, p)
	case !fi.IsDir():
		return fmt.Errorf("cache %s is not a directory", p)
	}
	return nil
}

// CheckCacheRoots runs CheckCacheRoot on each cache of l.
func (l Layout) CheckCacheRoots() error {
	for _, c := range l.Caches() {
		if err := l.CheckCacheRoot(c); err != nil {
			return err
		}
	}
	return nil
}
