package mount

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/internal/units"
)

// day is the unit cache ages are spoken of in (units.ParseDuration's "d").
const day = units.Day

// Go's own trim rule (cmd/go/internal/cache): entries unused for trimLimit
// go, judged by mtimes that may lag real use by up to an hour.
const (
	goTrimLimit = 5 * day
	// DefaultUnusedFor is what prune removes when given no limit: exactly
	// what Go's next trim would remove, so prune never surprises a user
	// who knows Go's rule.
	DefaultUnusedFor = goTrimLimit + goMtimeInterval
	// MinUnusedFor is the shortest UnusedFor Prune accepts. Go refreshes
	// an entry's use mark only when it is more than goMtimeInterval old,
	// so an entry used a minute ago can carry a mark up to an hour old
	// (and a restored one is two hours old): any shorter limit cannot
	// tell used entries from unused ones and removes them all, which is
	// Clean's job, not Prune's.
	MinUnusedFor = goMtimeInterval
)

// PruneOptions configure Prune. With neither MaxSize nor UnusedFor set, Prune
// applies DefaultUnusedFor.
type PruneOptions struct {
	// MaxSize caps the bytes of the build cache's entries; the least
	// recently used go first. 0 means no cap (use Clean to empty a cache).
	MaxSize int64
	// UnusedFor removes entries whose use mark is older than this.
	UnusedFor time.Duration
	// ModcacheTrees also removes the module cache's extracted trees whose
	// zip (and .ziphash) are present: Go re-extracts them on demand.
	ModcacheTrees bool
	// DryRun reports what would go and changes nothing.
	DryRun bool
	// Caches names the caches to prune; nil means the build cache (and
	// the module cache's trees with ModcacheTrees), as before there were
	// other caches. Named gocache is trimmed by use marks as above; named
	// gomodcache loses its re-extractable trees (as ModcacheTrees); every
	// other named cache, which has no use marks (its tools never touch a
	// file they read), loses its files written longer than MaxAge ago, then
	// its oldest files until it fits in MaxSize. Those are pruned only when
	// named, and need MaxAge or MaxSize.
	Caches []Cache
	// MaxAge is the age, by mtime, past which a named cache without use
	// marks loses a file.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now         func() time.Time
	Lock        *Lock
	LockOptions LockOptions
}

// PruneResult says what Prune removed (or would remove, in a dry run).
type PruneResult struct {
	DryRun bool `json:"dryRun"`
	// Entries and Bytes count removed build-cache entries; Kept and
	// KeptBytes what is left.
	Entries   int   `json:"entries"`
	Bytes     int64 `json:"bytes"`
	Kept      int   `json:"kept"`
	KeptBytes int64 `json:"keptBytes"`
	// Trees and TreeBytes count removed extracted module trees.
	Trees     int   `json:"trees"`
	TreeBytes int64 `json:"treeBytes"`
	// TrimUpdated is true when trim.txt was rewritten (see Prune).
	TrimUpdated bool `json:"trimUpdated"`
	// Caches reports the named caches without use marks.
	Caches []CachePrune `json:"caches,omitempty"`
}

// CachePrune says what Prune removed from (or kept in) a cache without use
// marks.
type CachePrune struct {
	Name      Cache `json:"name"`
	Files     int   `json:"files"`
	Bytes     int64 `json:"bytes"`
	Kept      int   `json:"kept"`
	KeptBytes int64 `json:"keptBytes"`
}

// Prune trims the build cache least recently used first, by Go's own use
// marks (mtimes), and optionally the module cache's extracted trees.
//
// trim.txt records when Go last trimmed the cache. When Prune removed at
// least everything Go's own trim would (UnusedFor no longer than
// DefaultUnusedFor), it writes the current time there in Go's format, so the
// next go command does not repeat the scan; otherwise trim.txt is left alone
// and Go's rule still applies on its schedule.
func (l Layout) Prune(ctx context.Context, o PruneOptions) (*PruneResult, error) {
	now := clock(o.Now)()
	if err := l.checkExists(); err != nil {
		return nil, err
	}
	if o.MaxSize < 0 || o.UnusedFor < 0 {
		return nil, fmt.Errorf("prune: negative limit")
	}
	if o.UnusedFor > 0 && o.UnusedFor < MinUnusedFor {
		return nil, fmt.Errorf("prune: unused-for %v is below Go's %v use-mark interval: every entry looks unused and would go (use Clean to empty a cache)", o.UnusedFor, MinUnusedFor)
	}
	byAge, err := l.checkPruneCaches(o)
	if err != nil {
		return nil, err
	}
	if o.MaxSize == 0 && o.UnusedFor == 0 {
		o.UnusedFor = DefaultUnusedFor
	}
	mode := Exclusive
	if o.DryRun {
		mode = Shared
	}
	release, err := l.Acquire(ctx, o.Lock, mode, o.LockOptions)
	if err != nil {
		return nil, err
	}
	defer release()
	// A root that is a link is refused before anything goes: pruning it
	// would remove files wherever it points (a build can plant one).
	if err := l.CheckCacheRoots(); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	res := &PruneResult{DryRun: o.DryRun}
	if gc := l.CacheDir(GoCache); gc != "" && (o.Caches == nil || slices.Contains(o.Caches, GoCache)) {
		if err := l.pruneGoCache(ctx, gc, now, o, res); err != nil {
			return res, err
		}
	}
	for _, c := range byAge {
		if err := l.pruneByMtime(ctx, c, now, o, res); err != nil {
			return res, err
		}
	}
	if o.ModcacheTrees || slices.Contains(o.Caches, GoModCache) {
		if err := pruneTrees(ctx, l.CacheDir(GoModCache), o.DryRun, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (l Layout) pruneGoCache(ctx context.Context, gc string, now time.Time, o PruneOptions, res *PruneResult) error {
	ents, err := scanGoCache(gc)
	if err != nil {
		return fmt.Errorf("prune %s: %w", gc, err)
	}
	// Oldest first; ties by path so that a run is reproducible.
	sort.Slice(ents, func(i, j int) bool {
		if !ents[i].modTime.Equal(ents[j].modTime) {
			return ents[i].modTime.Before(ents[j].modTime)
		}
		return ents[i].path < ents[j].path
	})
	var total int64
	for _, e := range ents {
		total += e.size
	}
	remove := make([]bool, len(ents))
	cutoff := now.Add(-o.UnusedFor)
	for i, e := range ents {
		if (o.UnusedFor > 0 && e.modTime.Before(cutoff)) || (o.MaxSize > 0 && total > o.MaxSize) {
			remove[i] = true
			total -= e.size
		}
	}
	// An action entry whose output goes is worthless (Go would count it a
	// miss): remove it too.
	gone := map[string]bool{}
	for i, e := range ents {
		if remove[i] && !e.action {
			gone[e.id] = true
		}
	}
	for i, e := range ents {
		if remove[i] || !e.action {
			continue
		}
		if a, err := readActionEntry(e); err == nil && gone[a.out] {
			remove[i] = true
		}
	}
	for i, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !remove[i] {
			res.Kept++
			res.KeptBytes += e.size
			continue
		}
		if !o.DryRun {
			if err := fsutil.RemoveAll(e.path); err != nil {
				return fmt.Errorf("prune: %w", err)
			}
		}
		res.Entries++
		res.Bytes += e.size
	}
	if !o.DryRun && o.UnusedFor > 0 && o.UnusedFor <= DefaultUnusedFor {
		// Go writes the Unix seconds with no newline (cache.go, Trim).
		// Durability: fsutil.SyncFile. A trim.txt lost to a crash only makes
		// Go trim again on its own schedule, which prune has just done.
		trim := []byte(strconv.FormatInt(now.Unix(), 10))
		if err := fsutil.WriteFile(filepath.Join(gc, goCacheTrimFile), trim, fsutil.WriteOptions{Sync: fsutil.SyncFile, CreateDirs: true}); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if fi, err := os.Stat(gc); err == nil {
			if ow, ok := ownerOf(fi); ok {
				_ = os.Lchown(filepath.Join(gc, goCacheTrimFile), ow.UID, ow.GID)
			}
		}
		res.TrimUpdated = true
	}
	return nil
}

// pruneTrees removes extracted module trees that Go can re-create from the
// cache: the zip and its .ziphash must both be there (without .ziphash Go
// would refetch instead of re-extracting), and no extraction may be under
// way (.partial).
func pruneTrees(ctx context.Context, modcache string, dryRun bool, res *PruneResult) error {
	mods, err := scanModCache(modcache)
	if err != nil {
		return fmt.Errorf("prune %s: %w", modcache, err)
	}
	for _, m := range sortedMods(mods) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if m.tree == "" || !m.hasZip || !m.hasZiphash || m.hasPartial {
			continue
		}
		var n int64
		_ = filepath.Walk(m.tree, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return nil
		})
		if !dryRun {
			if err := fsutil.RemoveAll(m.tree); err != nil {
				return fmt.Errorf("prune: %w", err)
			}
		}
		res.Trees++
		res.TreeBytes += n
	}
	return nil
}
