package oci

import (
	"fmt"
	"slices"
	"strings"

	"github.com/melcache/melcache/mount"
)

// Partial snapshots (push/pull --only): one module cache can serve builds
// of many Go versions while build caches stay per version, since GOCACHE
// entries are keyed by the Go version and GOMODCACHE's are not; and one
// cache (npm, say) can be pushed or restored without touching the others.

// ParseOnly parses an --only value: cache names from the registry
// (mount.ParseCaches: gomodcache, gocache, npm, pip, uv, composer,
// m2repository, fetch, or all), comma-separated; "" means the push's or
// the snapshot's caches.
func ParseOnly(s string) ([]mount.Cache, error) {
	if s == "" {
		return nil, nil
	}
	cs, err := mount.ParseCaches([]string{s})
	if err != nil {
		return nil, fmt.Errorf("--only: %w", err)
	}
	return cs, nil
}

// defaultCaches are the caches a push without --only holds: the Go caches
// always (every snapshot before issue 15 held them, and a snapshot without
// a caches list means them), and each other cache that is present in DIR
// (mount.CachePresent: its root is a directory; for the fetch cache, DIR
// holds a sha256:/sha512: file). An absent cache is left out rather than
// pushed empty: a snapshot lists what the pusher had, and a pull --replace
// of an empty npm would empty the builder's npm cache for nothing.
func defaultCaches(l mount.Layout) ([]mount.Cache, error) {
	out := l.Caches()
	if l.Mode == mount.Recipe {
		return out, nil
	}
	for _, c := range l.AllCaches() {
		if slices.Contains(out, c) {
			continue
		}
		ok, err := l.CachePresent(c)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// Holds reports whether the snapshot holds cache c: the config lists it
// (a version 1 config without caches is read as every cache, format_v1.go).
func (c *Config) Holds(cache mount.Cache) bool {
	return slices.Contains(c.Caches, cache)
}

// pushCaches are the caches a push scans: defaultCaches, or o.Only (which
// may name a cache that is absent: it is pushed empty, as asked), in
// registry order.
func (o *Options) pushCaches(l mount.Layout) ([]mount.Cache, error) {
	if len(o.Only) == 0 {
		return defaultCaches(l)
	}
	var out []mount.Cache
	for _, c := range o.Only {
		if !slices.Contains(l.AllCaches(), c) {
			return nil, fmt.Errorf("--only %s: %s has no %s (recipe mode holds the module cache only)", c, l.Dir, c)
		}
	}
	for _, c := range l.AllCaches() { // registry order: module cache first
		if slices.Contains(o.Only, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// restoredCaches are the caches a pull swaps: the layout's caches that the
// snapshot holds and o.Only selects. The others are not read or touched,
// even with Replace.
func restoredCaches(l mount.Layout, snap *Snapshot, o Options) []mount.Cache {
	var out []mount.Cache
	for _, c := range l.AllCaches() {
		if snap.Config.Holds(c) && (len(o.Only) == 0 || slices.Contains(o.Only, c)) {
			out = append(out, c)
		}
	}
	return out
}

// selectCaches checks o.Only against the snapshot and drops the index
// entries of caches the pull does not restore. It returns a shallow copy;
// snap itself is unchanged.
func selectCaches(l mount.Layout, snap *Snapshot, o Options) (*Snapshot, error) {
	for _, c := range o.Only {
		if !snap.Config.Holds(c) {
			return nil, fmt.Errorf("--only %s: snapshot %s holds only %s", c, snap.Digest, joinCaches(snap.Config.Caches))
		}
	}
	if len(o.Only) == 0 {
		return snap, nil
	}
	cp := *snap
	cp.Index = &Index{FormatVersion: snap.Index.FormatVersion}
	keep := restoredCaches(l, snap, o)
	for _, e := range snap.Index.Entries {
		if slices.Contains(keep, e.Cache) {
			cp.Index.Entries = append(cp.Index.Entries, e)
		}
	}
	return &cp, nil
}

// checkPartial refuses an index entry of a cache a partial snapshot's
// config does not list.
func checkPartial(x *Index, c *Config) error {
	for _, e := range x.Entries {
		if !c.Holds(e.Cache) {
			return fmt.Errorf("snapshot index: %s/%s: the snapshot holds only %s", e.Cache, e.Path, joinCaches(c.Caches))
		}
	}
	return nil
}

func joinCaches(cs []mount.Cache) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// countFiles counts the regular files of an index and their bytes.
func countFiles(x *Index) (n int, size int64) {
	for _, e := range x.Entries {
		if e.Type == TypeFile {
			n++
			size += e.Size
		}
	}
	return n, size
}
