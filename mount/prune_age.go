package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
)

// ErrPruneLimits is returned (wrapped) when the named caches and the
// limits do not go together: a cache without use marks named with no
// maximum age or size, or a maximum age with no such cache named.
var ErrPruneLimits = errors.New("prune limits do not fit the caches named")

// checkPruneCaches checks o's named caches and limits before anything is
// removed, and returns the named caches without use marks.
func (l Layout) checkPruneCaches(o PruneOptions) ([]Cache, error) {
	if o.MaxAge < 0 {
		return nil, fmt.Errorf("prune: negative limit")
	}
	if err := l.checkCaches(o.Caches); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	var byAge []Cache
	for _, c := range o.Caches {
		if p, _ := ProfileOf(c); !p.UseMarks && c != GoModCache {
			byAge = append(byAge, c)
		}
	}
	switch {
	case len(byAge) > 0 && o.MaxAge == 0 && o.MaxSize == 0:
		return nil, fmt.Errorf("prune: %s keeps no use marks, so there is no default: give a maximum age or size (%w)", joinCaches(byAge), ErrPruneLimits)
	case len(byAge) == 0 && o.MaxAge > 0:
		return nil, fmt.Errorf("prune: a maximum age applies to caches without use marks, and none is named (%w)", ErrPruneLimits)
	}
	return byAge, nil
}

// pruneByMtime removes the files of c written longer than o.MaxAge ago,
// then the oldest until the rest fits in o.MaxSize; ties go by path, so a
// run is reproducible. A directory a removal empties goes too (not the
// cache root).
func (l Layout) pruneByMtime(ctx context.Context, c Cache, now time.Time, o PruneOptions, res *PruneResult) error {
	files, err := l.cacheFiles(ctx, c)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mtime.Equal(files[j].mtime) {
			return files[i].mtime.Before(files[j].mtime)
		}
		return files[i].path < files[j].path
	})
	var total int64
	for _, f := range files {
		total += f.size
	}
	cp := CachePrune{Name: c}
	cutoff := now.Add(-o.MaxAge)
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !(o.MaxAge > 0 && f.mtime.Before(cutoff)) && !(o.MaxSize > 0 && total > o.MaxSize) {
			cp.Kept++
			cp.KeptBytes += f.size
			continue
		}
		total -= f.size
		if !o.DryRun {
			if err := fsutil.RemoveAll(f.path); err != nil {
				return fmt.Errorf("prune: %w", err)
			}
			removeEmptyParents(filepath.Dir(f.path), l.CacheDir(c))
		}
		cp.Files++
		cp.Bytes += f.size
	}
	res.Caches = append(res.Caches, cp)
	return nil
}

// removeEmptyParents removes dir and its parents up to, not including,
// root while they are empty (os.Remove refuses a non-empty directory).
func removeEmptyParents(dir, root string) {
	for root != "" && dir != root && len(dir) > len(root) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
