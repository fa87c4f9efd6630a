package mount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/melcache/melcache/internal/fsutil"
)

// CleanOptions configure Clean.
type CleanOptions struct {
	// Caches are the caches to empty; nil means the Go caches
	// (Layout.Caches), as before there were others.
	Caches      []Cache
	Lock        *Lock
	LockOptions LockOptions
}

// CleanResult lists what Clean emptied.
type CleanResult struct {
	// Emptied lists the cache directories emptied (for the fetch cache,
	// DIR/sha*:*).
	Emptied []string `json:"emptied"`
	// Entries counts the top-level entries removed from them.
	Entries int `json:"entries"`
}

// Clean empties melcache's caches, read-only module trees included, and
// touches nothing else: other tools' files in the directory stay, and so
// does the state directory (it holds the lock and the record of pushed
// snapshots, which stay valid as delta bases because they describe the
// registry's content, not the local one).
//
// The cache directories themselves stay, with their owner: the layout is
// still prepared, so the next melange build can mount it at once, and the
// build user can clean a cache inside a directory it may not write (a
// root-owned DIR with caches given to uid 1000). Go's README is removed
// with the rest; Go (or prepare) writes it again.
//
// Only the caches named in o.Caches are emptied (the Go caches by default).
// The fetch cache has no directory: its files, DIR/sha256:<hex> and
// DIR/sha512:<hex>, are removed one by one, and nothing else in DIR.
//
// In recipe mode the whole directory is a module cache; Clean then empties
// it as `go clean -modcache` would, but only when it looks like one (it has
// cache/download), so that a mistyped --dir cannot wipe an unrelated tree.
func (l Layout) Clean(ctx context.Context, o CleanOptions) (*CleanResult, error) {
	if err := l.checkExists(); err != nil {
		return nil, err
	}
	if o.Caches == nil {
		o.Caches = l.Caches()
	}
	if err := l.checkCaches(o.Caches); err != nil {
		return nil, err
	}
	release, err := l.Acquire(ctx, o.Lock, Exclusive, o.LockOptions)
	if err != nil {
		return nil, err
	}
	defer release()
	// A root that is a link is refused before anything goes: emptying it
	// would empty whatever it points at (a build can plant one).
	for _, c := range o.Caches {
		if err := l.CheckCacheRoot(c); err != nil {
			return nil, fmt.Errorf("clean: %w", err)
		}
	}
	res := &CleanResult{}
	if l.Mode == Recipe {
		if fi, err := os.Stat(downloadDir(l.Dir)); err != nil || !fi.IsDir() {
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				return res, nil // nothing that looks like a module cache: nothing of ours
			}
			return nil, err
		}
	}
	if slices.Contains(o.Caches, FetchCache) {
		if err := l.cleanFetch(res); err != nil {
			return res, err
		}
	}
	for _, dir := range l.dirsOf(o.Caches) {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return res, fmt.Errorf("clean: %w", err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if err := fsutil.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return res, fmt.Errorf("clean: %w", err)
			}
		}
		res.Emptied = append(res.Emptied, dir)
		res.Entries += len(ents)
	}
	return res, nil
}

// cleanFetch removes the fetch cache's files from DIR.
func (l Layout) cleanFetch(res *CleanResult) error {
	files, err := l.fetchFiles()
	if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	for _, f := range files {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("clean: %w", err)
		}
	}
	res.Emptied = append(res.Emptied, filepath.Join(l.Dir, "sha*:*"))
	res.Entries += len(files)
	return nil
}
