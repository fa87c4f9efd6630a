package mount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CleanOptions configure Clean.
type CleanOptions struct {
	Lock        *Lock
	LockOptions LockOptions
}

// CleanResult lists what Clean removed.
type CleanResult struct {
	Removed []string `json:"removed"`
}

// Clean removes melcache's caches, read-only module trees included, and
// nothing else: other tools' files in the directory stay, and so does the
// state directory (it holds the lock and the record of pushed snapshots,
// which stay valid as delta bases because they describe the registry's
// content, not the local one).
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
		ents, err := os.ReadDir(l.Dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			p := filepath.Join(l.Dir, e.Name())
			if err := removeAll(p); err != nil {
				return res, fmt.Errorf("clean: %w", err)
			}
			res.Removed = append(res.Removed, p)
		}
		return res, nil
	}
	for _, c := range l.Caches() {
		p := l.CacheDir(c)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := removeAll(p); err != nil {
			return res, fmt.Errorf("clean: %w", err)
		}
		res.Removed = append(res.Removed, p)
	}
	return res, nil
}
