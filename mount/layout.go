package mount

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// GuestRoot is where melange mounts the cache directory inside the build
// environment (melange's pkg/build: "/var/cache/melange").
const GuestRoot = "/var/cache/melange"

// Names of the entries melcache owns inside a cache directory. Nothing else in
// the directory is ever created, changed or removed by melcache.
const (
	GoModCacheName = "gomodcache"
	GoCacheName    = "gocache"
	StateName      = ".melcache"
)

// DefaultDir is melange's own default for --cache-dir ("./melange-cache/"),
// so that `melcache prepare` with no flags prepares the directory a plain
// `melange build` would mount.
const DefaultDir = "melange-cache"

// Mode says how a cache directory is organised.
type Mode int

const (
	// Split is melcache's layout: the module cache and the build cache are
	// subdirectories of DIR, next to the tool state.
	Split Mode = iota
	// Recipe is the layout of melange's docs/BUILD-CACHE.md: DIR itself is
	// GOMODCACHE; there is no build cache and the state lives outside DIR.
	Recipe
)

func (m Mode) String() string {
	if m == Recipe {
		return "recipe"
	}
	return "split"
}

// Cache names one of the caches in the registry (caches.go).
type Cache string

// The Go caches, the ones push and pull snapshot.
const (
	GoModCache Cache = "gomodcache"
	GoCache    Cache = "gocache"
)

// Layout is a cache directory on the host. The zero value is not usable; use
// New.
type Layout struct {
	// Dir is the absolute host path of the cache directory.
	Dir string
	// Mode is Split or Recipe.
	Mode Mode
	// State is the absolute path of melcache's own state directory:
	// Dir/.melcache in split mode, under the user's cache dir in recipe mode.
	State string
}

// Options configure New.
type Options struct {
	// Recipe selects recipe mode (DIR is GOMODCACHE).
	Recipe bool
	// StateRoot is where recipe-mode state directories are kept. Empty means
	// os.UserCacheDir()/melcache/state.
	StateRoot string
}

// New returns the layout of dir. It does not touch the filesystem beyond
// resolving dir to an absolute path; see Prepare to create it.
func New(dir string, o Options) (Layout, error) {
	if dir == "" {
		return Layout{}, errors.New("cache directory: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Layout{}, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	l := Layout{Dir: abs, Mode: Split, State: filepath.Join(abs, StateName)}
	if o.Recipe {
		root := o.StateRoot
		if root == "" {
			uc, err := os.UserCacheDir()
			if err != nil {
				return Layout{}, fmt.Errorf("recipe mode needs a state directory outside %s: %w", abs, err)
			}
			root = filepath.Join(uc, "melcache", "state")
		}
		sum := sha256.Sum256([]byte(abs))
		l.Mode = Recipe
		l.State = filepath.Join(root, hex.EncodeToString(sum[:8]))
	}
	return l, nil
}

// CacheDir returns the host path of cache c, or "" when the layout has no
// such cache (GOCACHE in recipe mode) or c has no root directory (the
// fetch cache, whose files are DIR's own entries: see FetchFiles).
func (l Layout) CacheDir(c Cache) string {
	switch {
	case l.Mode == Recipe && c == GoModCache:
		return l.Dir
	case l.Mode == Recipe || c == FetchCache:
		return ""
	}
	return filepath.Join(l.Dir, string(c))
}

// GuestPath returns the path of cache c inside the build environment, or ""
// when the layout has no such cache.
func (l Layout) GuestPath(c Cache) string {
	switch {
	case l.Mode == Recipe && c == GoModCache:
		return GuestRoot
	case l.Mode == Recipe:
		return ""
	case c == FetchCache:
		return GuestRoot
	}
	return GuestRoot + "/" + string(c)
}

// Caches lists the Go caches this layout holds, module cache first: what
// prepare and clean default to, build measures, and every snapshot holds
// (a push adds the other caches present in DIR: AllCaches, CachePresent).
func (l Layout) Caches() []Cache {
	if l.Mode == Recipe {
		return []Cache{GoModCache}
	}
	return GoCaches()
}

// Env returns the environment a build inside the mount should use, as
// KEY=VALUE pairs in a fixed order.
func (l Layout) Env() []string {
	env := []string{"GOMODCACHE=" + l.GuestPath(GoModCache)}
	if p := l.GuestPath(GoCache); p != "" {
		env = append(env, "GOCACHE="+p)
	}
	return env
}

// HostEnv is Env with host paths: what a `go` command run directly on the
// host (not inside melange) uses to share the same caches.
func (l Layout) HostEnv() []string {
	env := []string{"GOMODCACHE=" + l.CacheDir(GoModCache)}
	if p := l.CacheDir(GoCache); p != "" {
		env = append(env, "GOCACHE="+p)
	}
	return env
}
