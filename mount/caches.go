package mount

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// CacheProfile describes one cache melange points at the directory it
// mounts (GuestRoot): its name (the directory DIR/<name>), where it lives in
// the build and who points the tool there, what in it is volatile, what
// melcache can verify, how it is owned and how prune treats it. This list is
// the one registry of caches: the layout's caches, the names a restore
// journal may name, the names --cache takes and the caches a snapshot may
// hold come from it, so adding one of melange's caches means adding a
// profile here (and a row in docs/caches.md, which a test checks).
type CacheProfile struct {
	// Name is the cache's directory name in DIR, and its name in
	// snapshots, journals and --cache lists.
	Name Cache
	// Env is the environment variable that locates the cache, "" when the
	// tool is pointed there another way (SetBy).
	Env string
	// SetBy says who points the tool at the cache's guest path.
	SetBy string
	// TopLevel is set for a cache that has no root directory: its files
	// are entries of DIR itself, recognised by name (the fetch cache's
	// DIR/sha256:<hex>). Everything else in DIR stays untouched.
	TopLevel bool
	// Volatile are path.Match patterns, relative to the cache root, of
	// what the tool rewrites on every run or only logs (a pattern matches
	// a path or any of its parent directories): not worth keeping or
	// comparing. Nil for the Go caches, whose volatile files oci decides
	// (oci/volatile.go), as it always has.
	Volatile []string
	// Verified says what Verify checks; Unverified what the format gives
	// nothing to check against.
	Verified, Unverified string
	// Owner says who writes the cache, and so who must own it.
	Owner string
	// UseMarks is set for a cache whose files' mtimes are refreshed on use
	// (Go's build cache): prune trims it by default. Every other cache is
	// pruned only when named, by mtime (the write time) and size.
	UseMarks bool
	// GoCache is set for the Go caches: the default caches of prepare,
	// clean and build's measurements (Layout.Caches), and the caches a
	// snapshot without a caches list holds (docs/format.md). Every cache
	// can be snapshotted (oci: push holds the Go caches and every other
	// cache present in DIR).
	GoCache bool
}

// The caches melange points at its mount besides Go's (melange's
// pkg/config/config.go sets these variables when the config leaves them
// empty; the maven pipelines link ~/.m2/repository; the fetch pipeline
// reads DIR/<algo>:<hex>).
const (
	NPMCache      Cache = "npm"
	PipCache      Cache = "pip"
	UVCache       Cache = "uv"
	ComposerCache Cache = "composer"
	MavenCache    Cache = "m2repository"
	FetchCache    Cache = "fetch"
)

// buildUserOwns is the ownership of every cache the build writes.
const buildUserOwns = "the build user (uid 1000 in the guest, the user who runs melange on the host): prepare gives the root to --owner"

// cacheProfiles are the caches in a split layout, module cache first (the
// order of Layout.Caches, snapshots and the swap), then the others in the
// order status lists them.
var cacheProfiles = []CacheProfile{
	{Name: GoModCache, Env: "GOMODCACHE", SetBy: "melange's default environment; go/build steps export it",
		Verified:   "module zips and extracted trees against .ziphash (and go.sum with --gosum)",
		Unverified: "a module's .info and .mod without a go.sum line",
		Owner:      buildUserOwns, GoCache: true},
	{Name: GoCache, Env: "GOCACHE", SetBy: "melcache inject / build (melange sets none)",
		Verified:   "outputs against their names (sha256); action entries' format",
		Unverified: "which action an output belongs to (a consistent forgery passes)",
		Owner:      buildUserOwns, UseMarks: true, GoCache: true},
	{Name: NPMCache, Env: "npm_config_cache", SetBy: "melange's pkg/config/config.go, when empty",
		Volatile:   []string{"_logs", "_update-notifier-last-checked", "_cacache/tmp"},
		Verified:   "cacache: content-v2 files against their names (the integrity digest); index-v5 lines against their sha1 prefix and bucket (sha256 of the key); an index entry's content against its integrity",
		Unverified: "_npx installs and anything outside _cacache",
		Owner:      buildUserOwns},
	{Name: PipCache, Env: "PIP_CACHE_DIR", SetBy: "melange's pkg/config/config.go, when empty",
		Volatile:   []string{"selfcheck", "selfcheck.json", "*.lock"},
		Verified:   "wheels (wheels/ and http-v2 bodies that are wheels) against their RECORD's sha256 and sizes",
		Unverified: "http/ (pip < 23.3: bodies inside cachecontrol's msgpack) and other http-v2 bodies: cachecontrol stores no digest; wheels' RECORD is written with the wheel",
		Owner:      buildUserOwns},
	{Name: UVCache, Env: "UV_CACHE_DIR", SetBy: "melange's pkg/config/config.go, when empty",
		Volatile:   []string{".lock", "interpreter-v*", ".tmp*"},
		Unverified: "everything: uv's buckets (archive-v*, wheels-v*, simple-v*, sdists-v*) are its own binary formats with no digest melcache reads; untested (uv has no install source here)",
		Owner:      buildUserOwns},
	{Name: ComposerCache, Env: "COMPOSER_CACHE_DIR", SetBy: "melange's pkg/config/config.go, when empty",
		Volatile:   []string{".htaccess"},
		Unverified: "everything: files/ dists are named after their source reference, not their content, and repo/ metadata carries no digest of the cached bytes; untested",
		Owner:      buildUserOwns},
	{Name: MavenCache, SetBy: "the maven/configure-mirror and maven/pombump pipelines link ~/.m2/repository to it",
		Volatile:   []string{"*.lastUpdated", "_remote.repositories", "resolver-status.properties", "maven-metadata-*.xml"},
		Verified:   "every file with a .sha1 (or .sha256, .sha512, .md5) beside it against that checksum",
		Unverified: "files without a checksum file beside them (maven-metadata, _remote.repositories); a real mvn run is untested",
		Owner:      buildUserOwns},
	{Name: FetchCache, TopLevel: true, SetBy: "the fetch pipeline reads DIR/sha256:<hex> (expected-sha256) or DIR/sha512:<hex>; melange update-cache writes them",
		Verified:   "every file against its name: sha256 or sha512 of its content",
		Unverified: "other files in DIR (names that are not <algo>:<lowercase hex>) are not the fetch cache's and are left alone",
		Owner:      "whoever runs melange update-cache on the host; the build only reads them"},
}

// Profiles returns every cache a snapshot may hold, in registry order:
// what push, pull and the restore journal handle. Since issue 15 that is
// every cache (AllProfiles).
func Profiles() []CacheProfile { return AllProfiles() }

// AllProfiles returns every cache melcache knows, in layout order:
// what prepare, status, verify, prune, clean, push and pull understand.
func AllProfiles() []CacheProfile {
	return append([]CacheProfile(nil), cacheProfiles...)
}

// GoCaches returns the Go caches' names, module cache first.
func GoCaches() []Cache {
	var out []Cache
	for _, p := range cacheProfiles {
		if p.GoCache {
			out = append(out, p.Name)
		}
	}
	return out
}

// ProfileOf returns c's profile, and false for a name not in the registry.
func ProfileOf(c Cache) (CacheProfile, bool) {
	for _, p := range cacheProfiles {
		if p.Name == c {
			return p, true
		}
	}
	return CacheProfile{}, false
}

// IsVolatile reports whether rel, a slash-separated path relative to the
// cache root, is volatile: it or one of its parent directories matches a
// pattern of p.Volatile.
func (p CacheProfile) IsVolatile(rel string) bool {
	for s := rel; s != "." && s != "" && s != "/"; s = path.Dir(s) {
		for _, pat := range p.Volatile {
			if ok, _ := path.Match(pat, path.Base(s)); ok {
				return true
			}
			if ok, _ := path.Match(pat, s); ok {
				return true
			}
		}
	}
	return false
}

// LookupCache returns the cache named name, and false when the registry
// (and so push, pull and the journal) has no such cache. Names are matched
// exactly: a path ("../x", "gocache/..") is never a cache name.
func LookupCache(name string) (Cache, bool) {
	// The registry itself, not a copy: decoding an index or the stat cache
	// looks up every entry's cache name.
	for _, p := range cacheProfiles {
		if string(p.Name) == name {
			return p.Name, true
		}
	}
	return "", false
}

// CacheNames lists the caches a snapshot may hold, comma-separated, for
// error messages.
func CacheNames() string { return joinProfiles(Profiles()) }

// AllCacheNames lists every cache name, comma-separated.
func AllCacheNames() string { return joinProfiles(cacheProfiles) }

func joinProfiles(ps []CacheProfile) string {
	var s []string
	for _, p := range ps {
		s = append(s, string(p.Name))
	}
	return strings.Join(s, ", ")
}

// AllCachesName is the --cache value that names every cache.
const AllCachesName = "all"

// ParseCaches parses a --cache list ("npm,pip", repeated flags joined):
// names from the registry, or "all", each once, in registry order. An
// empty list returns nil (the command's default).
func ParseCaches(list []string) ([]Cache, error) {
	want := map[Cache]bool{}
	for _, item := range list {
		for _, name := range strings.Split(item, ",") {
			name = strings.TrimSpace(name)
			switch p, ok := ProfileOf(Cache(name)); {
			case name == AllCachesName:
				for _, p := range cacheProfiles {
					want[p.Name] = true
				}
			case !ok:
				return nil, fmt.Errorf("unknown cache %q (known: %s, or %s)", name, AllCacheNames(), AllCachesName)
			default:
				want[p.Name] = true
			}
		}
	}
	var out []Cache
	for _, p := range cacheProfiles {
		if want[p.Name] {
			out = append(out, p.Name)
		}
	}
	return out, nil
}

// HasCache reports whether c is one of l's Go caches (Layout.Caches).
func (l Layout) HasCache(c Cache) bool {
	return slices.Contains(l.Caches(), c)
}

// Holds reports whether l can hold cache c at all (AllCaches): what a
// restore journal may name.
func (l Layout) Holds(c Cache) bool {
	return slices.Contains(l.AllCaches(), c)
}

// AllCaches lists every cache the layout can hold, in registry order: in
// split mode every profile, in recipe mode the module cache (DIR itself).
func (l Layout) AllCaches() []Cache {
	if l.Mode == Recipe {
		return []Cache{GoModCache}
	}
	out := make([]Cache, 0, len(cacheProfiles))
	for _, p := range cacheProfiles {
		out = append(out, p.Name)
	}
	return out
}
