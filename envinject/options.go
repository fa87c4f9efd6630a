package envinject

import (
	"fmt"
	"path"
	"strings"
)

// Guest paths melange and Go use. melange mounts the host cache directory at
// GuestRoot; the go/build pipelines export GOMODCACHE=DefaultGoModCache
// unconditionally, so that is the only module cache path that agrees with
// them. melange sets no GOCACHE: DefaultGoCache is the new part.
const (
	GuestRoot         = "/var/cache/melange"
	DefaultGoModCache = GuestRoot + "/gomodcache"
	DefaultGoCache    = GuestRoot + "/gocache"
)

// Variables melange and Go would use without melcache (docs/background.md, "Environment"): melange sets
// HOME=/home/build and GOMODCACHE=/var/cache/melange/gomodcache when empty and
// no GOCACHE, so Go falls back to $HOME/.cache/go-build, which lives in the
// workspace and is deleted after every build.
const (
	melangeHome         = "/home/build"
	goDefaultGoCache    = melangeHome + "/.cache/go-build"
	melangeDefaultGoMod = DefaultGoModCache
)

// Var is one environment variable to set.
type Var struct {
	Key, Value string
}

func (v Var) String() string { return v.Key + "=" + v.Value }

// Options say which variables Inject sets.
type Options struct {
	// GoModCache and GoCache are the guest paths of Go's caches; empty means
	// DefaultGoModCache and DefaultGoCache. melange's docs/BUILD-CACHE.md
	// recipe is GoModCache = GuestRoot.
	GoModCache, GoCache string
	// Offline adds GOPROXY=off, GOTOOLCHAIN=local and GOFLAGS=-mod=mod so a
	// build uses only what the restored module cache holds.
	Offline bool
	// Set holds extra variables, applied in order after the cache variables;
	// a later Var with the same Key replaces an earlier one.
	Set []Var
	// Force replaces values the user already set instead of keeping and
	// reporting them.
	Force bool
}

// DefaultVars returns the variables Inject sets for opts, in the order they
// are written: GOMODCACHE, GOCACHE, the --offline trio, then opts.Set.
func DefaultVars(opts Options) ([]Var, error) {
	mod, cache := opts.GoModCache, opts.GoCache
	if mod == "" {
		mod = DefaultGoModCache
	}
	if cache == "" {
		cache = DefaultGoCache
	}
	vars := []Var{{"GOMODCACHE", mod}, {"GOCACHE", cache}}
	if opts.Offline {
		vars = append(vars,
			Var{"GOPROXY", "off"},       // no network: only the restored module cache
			Var{"GOTOOLCHAIN", "local"}, // never download a toolchain (wolfi does the same)
			Var{"GOFLAGS", "-mod=mod"},  // let go.sum gaps resolve from the cache
		)
	}
	for _, s := range opts.Set {
		replaced := false
		for i := range vars {
			if vars[i].Key == s.Key {
				vars[i].Value = s.Value
				replaced = true
			}
		}
		if !replaced {
			vars = append(vars, s)
		}
	}
	for _, v := range vars {
		if err := checkVar(v); err != nil {
			return nil, err
		}
	}
	return vars, nil
}

// ParseVar parses KEY=VALUE as given to --set.
func ParseVar(s string) (Var, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return Var{}, fmt.Errorf("%q: want KEY=VALUE", s)
	}
	vr := Var{k, v}
	return vr, checkVar(vr)
}

func checkVar(v Var) error {
	if !validName(v.Key) {
		return fmt.Errorf("%q: not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)", v.Key)
	}
	if strings.ContainsAny(v.Value, "\n\r\x00") {
		return fmt.Errorf("%s: value contains a newline or NUL byte", v.Key)
	}
	if (v.Key == "GOCACHE" || v.Key == "GOMODCACHE") && !path.IsAbs(v.Value) {
		// Go rejects a relative GOCACHE and GOMODCACHE outright.
		return fmt.Errorf("%s=%q: must be an absolute path", v.Key, v.Value)
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// underGuestRoot reports whether the path p is GuestRoot or inside it.
func underGuestRoot(p string) bool {
	p = path.Clean(p)
	return p == GuestRoot || strings.HasPrefix(p, GuestRoot+"/")
}
