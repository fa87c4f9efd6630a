package oci

import (
	"fmt"
	"slices"
	"strings"

	"github.com/melcache/melcache/mount"
)

// Partial snapshots (push/pull --only): one module cache can serve builds
// of many Go versions while build caches stay per version, since GOCACHE
// entries are keyed by the Go version and GOMODCACHE's are not.

// ParseOnly parses an --only value: "gomodcache" or "gocache" (a
// comma-separated list is accepted; "" means every cache).
func ParseOnly(s string) ([]mount.Cache, error) {
	if s == "" {
		return nil, nil
	}
	var out []mount.Cache
	for _, p := range strings.Split(s, ",") {
		c := mount.Cache(strings.TrimSpace(p))
		if c != mount.GoModCache && c != mount.GoCache {
			return nil, fmt.Errorf("--only %q: want %s or %s", p, mount.GoModCache, mount.GoCache)
		}
		if !slices.Contains(out, c) {
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

// pushCaches are the caches a push scans: the layout's, cut to o.Only.
func (o *Options) pushCaches(l mount.Layout) ([]mount.Cache, error) {
	if len(o.Only) == 0 {
		return l.Caches(), nil
	}
	var out []mount.Cache
	for _, c := range o.Only {
		if l.CacheDir(c) == "" {
			return nil, fmt.Errorf("--only %s: %s has no %s (recipe mode holds the module cache only)", c, l.Dir, c)
		}
	}
	for _, c := range l.Caches() { // the layout's order: module cache first
		if slices.Contains(o.Only, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// configCaches is the config's caches field for a push: the caches pushed,
// in registry order (pushCaches keeps the layout's, which is the registry's).
func (o *Options) configCaches(l mount.Layout) []mount.Cache {
	cs, _ := o.pushCaches(l) // the scan already succeeded with the same call
	return cs
}

// restoredCaches are the caches a pull swaps: the layout's caches that the
// snapshot holds and o.Only selects. The others are not read or touched,
// even with Replace.
func restoredCaches(l mount.Layout, snap *Snapshot, o Options) []mount.Cache {
	var out []mount.Cache
	for _, c := range l.Caches() {
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
