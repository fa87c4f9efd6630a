package mount

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/internal/testenv"
)

// TestRegistry pins what oci sees: every cache can be snapshotted
// (LookupCache, CacheNames, Holds), while Layout.Caches (the defaults of
// prepare and clean) name only Go's.
func TestRegistry(t *testing.T) {
	l, _ := New(t.TempDir(), Options{})
	if got := l.Caches(); !slices.Equal(got, []Cache{GoModCache, GoCache}) {
		t.Errorf("Caches() = %v", got)
	}
	if _, ok := LookupCache("npm"); !ok || CacheNames() != AllCacheNames() {
		t.Errorf("LookupCache(npm) did not find it, or CacheNames() = %q", CacheNames())
	}
	if _, ok := LookupCache("../npm"); ok {
		t.Error("LookupCache(../npm) found a cache")
	}
	if l.HasCache(NPMCache) || !l.Holds(NPMCache) || !l.Holds(FetchCache) {
		t.Error("HasCache(npm) (a Go cache?) or !Holds(npm, fetch)")
	}
	all := l.AllCaches()
	if !slices.Equal(all, []Cache{GoModCache, GoCache, NPMCache, PipCache, UVCache, ComposerCache, MavenCache, FetchCache}) {
		t.Errorf("AllCaches() = %v", all)
	}
	r, _ := New(t.TempDir(), Options{Recipe: true, StateRoot: t.TempDir()})
	if !slices.Equal(r.AllCaches(), []Cache{GoModCache}) {
		t.Errorf("recipe AllCaches() = %v", r.AllCaches())
	}
}

// TestProfilesAgreeWithMelange checks each profile's variable and guest
// path against the ones melange sets (envinject.MelangeCacheVars, which
// the linter uses), and that docs/caches.md has a row for every cache.
func TestProfilesAgreeWithMelange(t *testing.T) {
	l, _ := New(t.TempDir(), Options{})
	seen := 0
	for _, p := range AllProfiles() {
		if def, ok := envinject.MelangeCacheVars[p.Env]; ok {
			seen++
			if def != l.GuestPath(p.Name) {
				t.Errorf("%s: melange sets %s=%s, the profile's guest path is %s", p.Name, p.Env, def, l.GuestPath(p.Name))
			}
		}
		if p.SetBy == "" || p.Owner == "" || (p.Verified == "" && p.Unverified == "") {
			t.Errorf("%s: profile does not say who sets it, who owns it, or what is verified", p.Name)
		}
	}
	if seen != len(envinject.MelangeCacheVars) {
		t.Errorf("%d of melange's %d cache variables have a profile", seen, len(envinject.MelangeCacheVars))
	}
	if l.GuestPath(FetchCache) != GuestRoot || l.CacheDir(FetchCache) != "" {
		t.Errorf("fetch cache: guest %q, host dir %q; want the mount itself and no directory", l.GuestPath(FetchCache), l.CacheDir(FetchCache))
	}
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "caches.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range AllProfiles() {
		if !strings.Contains(string(doc), "| `"+string(p.Name)+"`") {
			t.Errorf("docs/caches.md has no row for %s", p.Name)
		}
	}
}

func TestParseCaches(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []Cache
		err  string
	}{
		{nil, nil, ""},
		{[]string{"pip,npm"}, []Cache{NPMCache, PipCache}, ""},
		{[]string{"fetch", "npm", "npm"}, []Cache{NPMCache, FetchCache}, ""},
		{[]string{"all"}, l0().AllCaches(), ""},
		{[]string{"npm,../x"}, nil, `unknown cache "../x"`},
		{[]string{""}, nil, `unknown cache ""`},
	} {
		got, err := ParseCaches(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCaches(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseCaches(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func l0() Layout { l, _ := New("/x", Options{}); return l }

func TestIsVolatile(t *testing.T) {
	npm, _ := ProfileOf(NPMCache)
	mvn, _ := ProfileOf(MavenCache)
	for rel, want := range map[string]bool{
		"_logs/2026-debug-0.log":       true,
		"_cacache/tmp/abc":             true,
		"_cacache/content-v2/sha512/x": false,
		"_logsx":                       false,
	} {
		if npm.IsVolatile(rel) != want {
			t.Errorf("npm %s: volatile %v, want %v", rel, !want, want)
		}
	}
	if !mvn.IsVolatile("org/x/1.0/x-1.0.jar.lastUpdated") || mvn.IsVolatile("org/x/1.0/x-1.0.jar") {
		t.Error("maven volatile patterns")
	}
}

// TestPrepareCleanStatusOtherCaches: prepare creates only the caches asked
// for; status lists the others when present; clean empties only the named
// ones and leaves unknown files in DIR alone.
func TestPrepareCleanStatusOtherCaches(t *testing.T) {
	ctx := context.Background()
	l, _ := New(filepath.Join(t.TempDir(), "mc"), Options{})
	if _, err := l.Prepare(ctx, PrepareOptions{Caches: []Cache{NPMCache, PipCache}}); err != nil {
		t.Fatal(err)
	}
	for c, want := range map[Cache]bool{NPMCache: true, PipCache: true, GoCache: false, GoModCache: false, UVCache: false} {
		if _, err := os.Stat(l.CacheDir(c)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", c, err == nil, want)
		}
	}
	writeFiles(t, l.Dir, map[string]string{"npm/_cacache/x": "12345", "npm/_logs/a.log": "log", "pip/wheels/w": "1", "notes.txt": "mine"})
	st, err := l.Status(ctx, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []Cache
	for _, c := range st.Caches {
		names = append(names, c.Name)
		if c.Name == NPMCache && (c.Files != 2 || c.Bytes != 8 || c.Volatile != 1 || c.OldestUse == nil) {
			t.Errorf("npm status %+v", c)
		}
	}
	if !slices.Equal(names, []Cache{GoModCache, GoCache, NPMCache, PipCache}) {
		t.Errorf("status lists %v: want the Go caches (always) and the present ones", names)
	}
	// Default clean: the Go caches only.
	if _, err := l.Clean(ctx, CleanOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "npm/_cacache/x")); err != nil {
		t.Errorf("default clean touched npm: %v", err)
	}
	res, err := l.Clean(ctx, CleanOptions{Caches: []Cache{NPMCache}})
	if err != nil || res.Entries != 2 {
		t.Fatalf("clean npm: %+v %v", res, err)
	}
	for p, want := range map[string]bool{"npm": true, "npm/_cacache": false, "pip/wheels/w": true, "notes.txt": true} {
		if _, err := os.Stat(filepath.Join(l.Dir, p)); (err == nil) != want {
			t.Errorf("after clean npm: %s exists %v, want %v", p, err == nil, want)
		}
	}
	if _, err := l.Prepare(ctx, PrepareOptions{Caches: []Cache{NPMCache}, FromHost: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "--from-host seeds gomodcache") {
		t.Errorf("prepare --cache npm --from-host: %v", err)
	}
	r, _ := New(filepath.Join(t.TempDir(), "r"), Options{Recipe: true, StateRoot: t.TempDir()})
	if _, err := r.Prepare(ctx, PrepareOptions{Caches: []Cache{NPMCache}}); err == nil || !strings.Contains(err.Error(), "recipe layout holds only gomodcache") {
		t.Errorf("recipe prepare --cache npm: %v", err)
	}
}

// TestPruneByMtime prunes named caches without use marks by write time and
// size, oldest first, and leaves the Go caches and unnamed caches alone.
func TestPruneByMtime(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l, _ := New(filepath.Join(t.TempDir(), "mc"), Options{})
	if _, err := l.Prepare(ctx, PrepareOptions{Caches: []Cache{GoCache, NPMCache, PipCache}}); err != nil {
		t.Fatal(err)
	}
	goOld, _ := putEntry(t, l.CacheDir(GoCache), "old go entry", now.Add(-30*day), now.Add(-30*day))
	ages := map[string]time.Duration{"npm/a/old": 40 * day, "npm/b/mid": 10 * day, "npm/new": time.Hour, "pip/old": 40 * day}
	for rel, age := range ages {
		writeFiles(t, l.Dir, map[string]string{rel: strings.Repeat("x", 100)})
		p := filepath.Join(l.Dir, rel)
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(rel string) bool { _, err := os.Stat(filepath.Join(l.Dir, rel)); return err == nil }

	for _, o := range []PruneOptions{{Caches: []Cache{NPMCache}}, {MaxAge: day}} {
		if _, err := l.Prune(ctx, o); err == nil || !strings.Contains(err.Error(), "prune limits do not fit") {
			t.Errorf("Prune(%+v): %v, want a refusal", o, err)
		}
	}
	before := treeState(t, l.Dir)
	res, err := l.Prune(ctx, PruneOptions{Caches: []Cache{NPMCache}, MaxAge: 30 * day, DryRun: true, Now: clock})
	if err != nil || len(res.Caches) != 1 || res.Caches[0] != (CachePrune{Name: NPMCache, Files: 1, Bytes: 100, Kept: 2, KeptBytes: 200}) {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if d := diffStates(before, treeState(t, l.Dir)); len(d) > 0 {
		t.Fatalf("dry run changed %v", d)
	}
	// Age, then size: the 40-day file goes by age, the 10-day one to fit.
	res, err = l.Prune(ctx, PruneOptions{Caches: []Cache{NPMCache}, MaxAge: 30 * day, MaxSize: 150, Now: clock})
	if err != nil || res.Caches[0].Files != 2 || res.Entries != 0 {
		t.Fatalf("prune npm: %+v %v", res, err)
	}
	if exists("npm/a/old") || exists("npm/b/mid") || exists("npm/a") || !exists("npm/new") || !exists("npm") {
		t.Error("npm: want old and mid (and their emptied dirs) gone, new and the root kept")
	}
	if !exists("pip/old") {
		t.Error("pip was not named, and lost a file")
	}
	if _, err := os.Stat(goOld); err != nil {
		t.Errorf("gocache was not named, and lost an entry: %v", err)
	}
}

// TestLinkedRootRefusedByChangingCommands: a build can replace a cache root
// with a link to any host directory; clean, prune and verify --repair run as
// root must refuse it, not empty or prune what it points at.
func TestLinkedRootRefusedByChangingCommands(t *testing.T) {
	ctx := context.Background()
	for _, c := range []Cache{GoCache, GoModCache, NPMCache} {
		t.Run(string(c), func(t *testing.T) {
			l, _ := New(filepath.Join(t.TempDir(), "mc"), Options{})
			if _, err := l.Prepare(ctx, PrepareOptions{Caches: []Cache{GoModCache, GoCache, NPMCache}}); err != nil {
				t.Fatal(err)
			}
			victim := t.TempDir()
			bad := "ab/ab" + strings.Repeat("0", 62) + "-d" // a bad Go output: repair would remove it
			writeFiles(t, victim, map[string]string{"important": "x", bad: "bad", "cache/download/x/@v/v1.0.0.zip": "zip"})
			if err := os.RemoveAll(l.CacheDir(c)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, l.CacheDir(c)); err != nil {
				t.Fatal(err)
			}
			before := treeState(t, victim)
			calls := map[string]func() error{
				"clean": func() error {
					_, err := l.Clean(ctx, CleanOptions{Caches: []Cache{c}})
					return err
				},
				"prune": func() error {
					o := PruneOptions{Caches: []Cache{c}, MaxSize: 1}
					if c == NPMCache {
						o.MaxAge = time.Nanosecond
					}
					_, err := l.Prune(ctx, o)
					return err
				},
				"verify --repair": func() error {
					_, err := l.Verify(ctx, VerifyOptions{Repair: true})
					return err
				},
			}
			for name, call := range calls {
				if err := call(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
					t.Errorf("%s with %s linked: %v, want a refusal naming the link", name, c, err)
				}
			}
			if d := diffStates(before, treeState(t, victim)); len(d) > 0 {
				t.Errorf("the link's target changed: %v", d)
			}
		})
	}
}
