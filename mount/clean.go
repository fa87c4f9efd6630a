package mount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/melcache/melcache/internal/fsutil"
)

// CleanOptions configure Clean.
type CleanOptions struct {
	Lock        *Lock
	LockOptions LockOptions
}

// CleanResult lists what Clean emptied.
type CleanResult struct {
	// Emptied lists the cache directories emptied.
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
// In recipe mode the whole directory is a module cache; Clean then empties
// it as `go clean -modcache` would, but only when it looks like one (it has
// cache/download), so that a mistyped --dir cannot wipe an unrelated tree.
func (l Layout) Clean(ctx context.Context, o CleanOptions) (*CleanResult, error) {
	if err := l.checkExists(); err != nil {
		return nil, err
	}
	release, err := l.Acquire(ctx, o.Lock, Exclusive, o.LockOptions)
	if err != nil {
		return nil, err
	}
	defer release()
	res := &CleanResult{}
	if l.Mode == Recipe {
		if fi, err := os.Stat(downloadDir(l.Dir)); err != nil || !fi.IsDir() {
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				return res, nil // nothing that looks like a module cache: nothing of ours
			}
			return nil, err
		}
	}
	for _, dir := range cacheDirs(l) {
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
