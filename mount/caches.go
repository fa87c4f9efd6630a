package mount

import "strings"

// CacheProfile describes one cache melcache manages inside a split-layout
// cache directory: its name (the directory DIR/<name>) and the variable
// that points the tool at it. This list is the one registry of caches:
// the layout's caches, the names a restore journal may name, and the
// caches a snapshot may hold come from it, so adding one of melange's
// other caches means adding a profile here.
type CacheProfile struct {
	// Name is the cache's directory name in DIR, and its name in
	// snapshots and journals.
	Name Cache
	// Env is the environment variable that locates the cache.
	Env string
}

// cacheProfiles are the caches in a split layout, module cache first (the
// order of Layout.Caches, snapshots and the swap).
var cacheProfiles = []CacheProfile{
	{Name: GoModCache, Env: "GOMODCACHE"},
	{Name: GoCache, Env: "GOCACHE"},
}

// Profiles returns the registry of caches, in layout order.
func Profiles() []CacheProfile {
	return append([]CacheProfile(nil), cacheProfiles...)
}

// LookupCache returns the cache named name in the registry, and false when
// melcache manages no such cache. Names are matched exactly: a path ("../x",
// "gocache/..") is never a cache name.
func LookupCache(name string) (Cache, bool) {
	for _, p := range cacheProfiles {
		if string(p.Name) == name {
			return p.Name, true
		}
	}
	return "", false
}

// CacheNames lists the registry's cache names, comma-separated, for error
// messages.
func CacheNames() string {
	var s []string
	for _, p := range cacheProfiles {
		s = append(s, string(p.Name))
	}
	return strings.Join(s, ", ")
}

// HasCache reports whether c is one of l's caches.
func (l Layout) HasCache(c Cache) bool {
	for _, x := range l.Caches() {
		if x == c {
			return true
		}
	}
	return false
}
