package mount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// CacheStatus describes one cache.
type CacheStatus struct {
	// Name is the cache's name in the registry (caches.go).
	Name Cache `json:"name"`
	// Path is the host path; GuestPath the path inside the build.
	Path      string `json:"path"`
	GuestPath string `json:"guestPath"`
	// Exists is false when the cache directory is missing.
	Exists bool `json:"exists"`
	// Files and Bytes count every regular file and its apparent size.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`

	// Build cache (zero for the module cache): action ("-a") and output
	// ("-d") entries; output directories (cached executables, Go >= 1.24)
	// are counted in Outputs and in OutputDirs.
	Actions    int `json:"actions"`
	Outputs    int `json:"outputs"`
	OutputDirs int `json:"outputDirs"`

	// Module cache (zero for the build cache): module paths, versions with
	// a source zip or an extracted tree, versions known by their go.mod
	// only, extracted trees, and trees whose zip is not cached.
	Modules     int `json:"modules"`
	Versions    int `json:"versions"`
	ModOnly     int `json:"modOnly"`
	Trees       int `json:"trees"`
	ZipsMissing int `json:"zipsMissing"`

	// Volatile counts the files of a cache other than Go's that match its
	// profile's volatile patterns (logs, locks), included in Files.
	Volatile int `json:"volatile,omitempty"`

	// OldestUse and NewestUse are the oldest and newest entry mtimes. For
	// the build cache those are Go's use marks (refreshed at most hourly);
	// Go never refreshes the module cache's files, nor do the other
	// caches' tools, so there they are write times. Nil when the cache is
	// empty.
	OldestUse *time.Time `json:"oldestUse"`
	NewestUse *time.Time `json:"newestUse"`
}

// Status describes a cache directory.
type Status struct {
	Dir    string         `json:"dir"`
	Mode   string         `json:"mode"`
	State  string         `json:"state"`
	Caches []*CacheStatus `json:"caches"`
	// LastSnapshot is the snapshot last pushed or pulled, nil if none.
	LastSnapshot *SnapshotRecord `json:"lastSnapshot"`
	// LastBuild is the build cache's hits and misses since the last mark
	// (melcache mark, or melcache build), nil if never marked.
	LastBuild *BuildUse `json:"lastBuild"`
	// LockedBy lists the processes holding the cache lock now.
	LockedBy []Holder `json:"lockedBy"`
}

// StatusOptions configure Status.
type StatusOptions struct{}

// Status reads the cache directory. It takes no lock: the numbers of a cache
// in use by a build are a moment's view, which is what status is for.
func (l Layout) Status(ctx context.Context, _ StatusOptions) (*Status, error) {
	if err := l.checkExists(); err != nil {
		return nil, err
	}
	st := &Status{Dir: l.Dir, Mode: l.Mode.String(), State: l.State}
	for _, c := range l.Caches() {
		cs, err := l.cacheStatus(ctx, c)
		if err != nil {
			return nil, err
		}
		st.Caches = append(st.Caches, cs)
	}
	// The other caches are listed when present: most builds use none.
	for _, c := range l.AllCaches() {
		if l.HasCache(c) {
			continue
		}
		cs, err := l.otherCacheStatus(ctx, c)
		if err != nil {
			return nil, err
		}
		if cs.Exists {
			st.Caches = append(st.Caches, cs)
		}
	}
	var err error
	if st.LastSnapshot, err = l.LastSnapshot(); err != nil {
		return nil, err
	}
	if st.LastBuild, err = l.LastBuild(); err != nil {
		return nil, err
	}
	if st.LockedBy, err = l.Holders(); err != nil {
		return nil, err
	}
	return st, nil
}

func (l Layout) cacheStatus(ctx context.Context, c Cache) (*CacheStatus, error) {
	dir := l.CacheDir(c)
	cs := &CacheStatus{Name: c, Path: dir, GuestPath: l.GuestPath(c)}
	// A linked root is refused, as push and pull refuse it: walking would
	// count nothing while the shard scans below follow the link.
	if err := l.CheckCacheRoot(c); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	use := func(t time.Time) {
		if cs.OldestUse == nil || t.Before(*cs.OldestUse) {
			cs.OldestUse = &t
		}
		if cs.NewestUse == nil || t.After(*cs.NewestUse) {
			cs.NewestUse = &t
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if p == dir {
			cs.Exists = true
		}
		if l.Mode == Split && p == l.State {
			return fs.SkipDir
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				cs.Files++
				cs.Bytes += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", dir, err)
	}
	if !cs.Exists {
		return cs, nil
	}
	switch c {
	case GoCache:
		ents, err := scanGoCache(dir)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", dir, err)
		}
		for _, e := range ents {
			if e.action {
				cs.Actions++
			} else {
				cs.Outputs++
				if e.dir {
					cs.OutputDirs++
				}
			}
			use(e.modTime)
		}
	case GoModCache:
		mods, err := scanModCache(dir)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", dir, err)
		}
		paths := map[string]bool{}
		for _, m := range mods {
			paths[m.mod.Path] = true
			switch {
			case m.hasZip || m.tree != "":
				cs.Versions++
			case m.hasMod:
				cs.ModOnly++
			}
			if m.tree != "" {
				cs.Trees++
				if !m.hasZip {
					cs.ZipsMissing++
				}
			}
		}
		cs.Modules = len(paths)
		_ = filepath.WalkDir(downloadDir(dir), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && filepath.Base(filepath.Dir(p)) == "@v" {
				if fi, err := d.Info(); err == nil {
					use(fi.ModTime())
				}
			}
			return nil
		})
	}
	return cs, nil
}

// otherCacheStatus describes a cache other than Go's: its files, bytes,
// volatile files and write times.
func (l Layout) otherCacheStatus(ctx context.Context, c Cache) (*CacheStatus, error) {
	cs := &CacheStatus{Name: c, Path: l.CacheDir(c), GuestPath: l.GuestPath(c)}
	if c == FetchCache {
		cs.Path = l.Dir
	}
	ok, err := l.CachePresent(c)
	if err != nil || !ok {
		return cs, err
	}
	files, err := l.cacheFiles(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	p, _ := ProfileOf(c)
	cs.Exists = true
	for _, f := range files {
		cs.Files++
		cs.Bytes += f.size
		if p.IsVolatile(f.rel) {
			cs.Volatile++
		}
		if t := f.mtime; cs.OldestUse == nil || t.Before(*cs.OldestUse) {
			cs.OldestUse = &t
		}
		if t := f.mtime; cs.NewestUse == nil || t.After(*cs.NewestUse) {
			cs.NewestUse = &t
		}
	}
	return cs, nil
}
