package mount

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// PreloadOptions configure Layout.Preload. Exactly one of Source and Config
// is set.
type PreloadOptions struct {
	// Source is a source tree: every go.mod under it is preloaded, or the
	// modules its top-level go.work uses.
	Source string
	// Config is a melange YAML file. Its git-checkout step (repository, tag
	// or branch, expected-commit) is cloned into a temporary directory, and
	// the modroots of its go/build steps are preloaded: only the modules
	// providing the steps' packages (with their tags) and their
	// dependencies, unless a runs: step calls go or make. Without a
	// git-checkout step the sources are the config's directory, as for
	// `melange build` (--source-dir defaults to it).
	Config string
	// SourceDir is melange's --source-dir for Config: the sources when the
	// config has no git-checkout step, and the base of a git-checkout
	// repository given as a relative path. "" means Config's directory.
	SourceDir string
	// Env is the environment of the go and git commands; nil means
	// os.Environ(). GOPROXY, GOPRIVATE, GONOPROXY, GONOSUMDB, GOSUMDB,
	// GOINSECURE, GOFLAGS and GOTOOLCHAIN are taken from it as they are;
	// GOMODCACHE is replaced by the layout's module cache.
	Env []string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Git is the git command; empty means "git" from PATH.
	Git string
	// Lock is a lock the caller already holds on the layout (nil: Preload
	// takes a shared one, as a build does: Go's module cache tolerates
	// concurrent writers).
	Lock *Lock
	// LockOptions configure waiting for the shared lock when Lock is nil;
	// with no OnWait the wait is logged.
	LockOptions LockOptions
	// Log receives progress; nil discards it.
	Log *slog.Logger
	// Now is the clock (nil: time.Now), used to tell new downloads from
	// modules already cached.
	Now func() time.Time
}

// PreloadResult describes what Preload did.
type PreloadResult struct {
	// ModCache is the host path of the module cache filled.
	ModCache string `json:"modcache"`
	// Checkout is set when the sources came from a config's git-checkout.
	Checkout *Checkout `json:"checkout,omitempty"`
	// Modules lists each main module considered, in order.
	Modules []PreloadedModule `json:"modules"`
}

// Checkout is the git-checkout step a config was preloaded from.
type Checkout struct {
	Repository string `json:"repository"`
	// Ref is the tag or branch checked out ("" for the default branch).
	Ref string `json:"ref,omitempty"`
	// Commit is the commit checked out (verified against expected-commit
	// when the config has one).
	Commit string `json:"commit"`
}

// PreloadedModule is one main module (one go.mod) and what was downloaded
// for it.
type PreloadedModule struct {
	// Dir is the module's directory relative to the source root ("." for
	// the root).
	Dir string `json:"dir"`
	// Path is the module path from go.mod.
	Path string `json:"path"`
	// Vendored is true when the module has a vendor/modules.txt: the go
	// command builds from vendor/ and nothing needs downloading.
	Vendored bool `json:"vendored,omitempty"`
	// Modules is the number of module versions the build needs that are now
	// in the cache; New how many of them this call downloaded.
	Modules int `json:"modules"`
	New     int `json:"new"`
	// Packages are the packages of the config's go/build steps when only
	// the modules that provide them (and their dependencies) were
	// downloaded; empty when every module of go.mod was (`go mod
	// download`: a --source tree, or packages not known before the build).
	Packages []string `json:"packages,omitempty"`
}

// Preload downloads into the layout's module cache every module the given
// sources need to build, so that a build with no network (GOPROXY=off, or
// inside melange with the network unshared) finds them all. The cache
// directories are created when missing.
//
// Before downloading it checks each go.mod's (and go.work's) go line against
// the local Go when GOTOOLCHAIN=local applies (set in Env or in the config's
// environment), and fails with the file, the line and both versions instead
// of failing deep in the build. The source tree's go.mod and go.sum are
// never modified (the downloads use a copy through -modfile).
func (l Layout) Preload(ctx context.Context, o PreloadOptions) (*PreloadResult, error) {
	if err := CheckPreloadInput(o); err != nil {
		return nil, err
	}
	p := newPreloader(o)
	p.skip = []string{l.Dir} // the cache dir may be inside the sources
	modcache := l.CacheDir(GoModCache)
	if err := os.MkdirAll(modcache, 0o755); err != nil {
		return nil, fmt.Errorf("preload: create module cache %s: %w", modcache, err)
	}
	lo := o.LockOptions
	if lo.OnWait == nil {
		lo.OnWait = func(h []Holder) {
			p.log.Info("waiting for the cache directory lock", "dir", l.Dir, "holders", fmt.Sprint(h))
		}
	}
	release, err := l.Acquire(ctx, o.Lock, Shared, lo)
	if err != nil {
		return nil, err
	}
	defer release()

	res := &PreloadResult{ModCache: modcache}
	var src preloadSource
	if o.Config != "" {
		src, err = p.fromConfig(ctx, o.Config, o.SourceDir)
		if src.cleanup != nil {
			defer src.cleanup()
		}
		if err != nil {
			return nil, err
		}
		res.Checkout = src.checkout
	} else {
		abs, err := filepath.Abs(o.Source)
		if err != nil {
			return nil, fmt.Errorf("preload: %s: %w", o.Source, err)
		}
		if fi, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("preload: source directory %s does not exist", o.Source)
		} else if err != nil {
			return nil, fmt.Errorf("preload: source %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("preload: source %s is not a directory", o.Source)
		}
		src = preloadSource{root: abs, label: o.Source}
		if src.modDirs, err = findModules(abs, p.skip...); err != nil {
			return nil, err
		}
	}
	mods, err := readModules(src)
	if err != nil {
		return nil, err
	}
	if err := p.checkToolchains(ctx, src, mods); err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	for _, m := range mods {
		pm := PreloadedModule{Dir: m.rel, Path: m.path, Vendored: m.vendored}
		if m.vendored {
			p.log.Info("vendor/modules.txt present: nothing to download", "module", m.path, "dir", m.rel)
			res.Modules = append(res.Modules, pm)
			continue
		}
		var n, fresh int
		narrowed := false
		if builds := src.builds[m.dir]; len(builds) > 0 {
			n, fresh, narrowed, err = p.listDeps(ctx, m, modcache, builds)
			if err != nil {
				return nil, err
			}
			if narrowed {
				for _, b := range builds {
					pm.Packages = append(pm.Packages, b.packages...)
				}
			}
		}
		if !narrowed {
			if n, fresh, err = p.download(ctx, m, modcache); err != nil {
				return nil, err
			}
		}
		pm.Modules, pm.New = n, fresh
		p.log.Info("preloaded", "module", m.path, "dir", m.rel, "modules", n, "new", fresh, "packages", strings.Join(pm.Packages, " "))
		res.Modules = append(res.Modules, pm)
	}
	return res, nil
}

// preloader carries the options' defaults.
type preloader struct {
	env     []string
	goCmd   string
	gitCmd  string
	log     *slog.Logger
	now     func() time.Time
	cfgEnv  map[string]string // the config's environment.environment, if any
	workDir string            // a neutral directory for version queries
	skip    []string          // directories a module search never enters
}

func newPreloader(o PreloadOptions) *preloader {
	p := &preloader{env: o.Env, goCmd: o.Go, gitCmd: o.Git, log: o.Log, now: o.Now}
	if p.env == nil {
		p.env = os.Environ()
	}
	if p.goCmd == "" {
		p.goCmd = "go"
	}
	if p.gitCmd == "" {
		p.gitCmd = "git"
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// getenv returns the last value of key in the preloader's environment.
func (p *preloader) getenv(key string) string {
	v := ""
	for _, kv := range p.env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// goEnv is the environment of the go commands preload runs: the caller's,
// with GOMODCACHE replaced and go.work ignored (each main module is
// downloaded on its own).
func (p *preloader) goEnv(modcache string) []string {
	env := make([]string, 0, len(p.env)+2)
	for _, kv := range p.env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "GOMODCACHE" || k == "GOWORK" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOMODCACHE="+modcache, "GOWORK=off")
}

// downloadRecord is one object of `go mod download -json`.
type downloadRecord struct {
	Path    string
	Version string
	Zip     string
	Error   string
}

// download runs `go mod download -json` for module m with a copy of its
// go.mod and go.sum (-modfile), so the source tree stays as it was even when
// go.sum lacks entries. It returns the number of module versions reported
// and how many zips are newer than the start of the call.
func (p *preloader) download(ctx context.Context, m modInfo, modcache string) (total, fresh int, err error) {
	tmp, modfile, err := modfileCopy(m)
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(tmp)
	// A zip written by this call has an mtime at or after start. (On a
	// filesystem with coarse timestamps a new zip may look older and is not
	// counted: the count is for the report, nothing depends on it.)
	start := p.now()
	cmd := exec.CommandContext(ctx, p.goCmd, "mod", "download", "-json", "-modfile="+modfile)
	cmd.Dir = m.dir
	cmd.Env = p.goEnv(modcache)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	dec := json.NewDecoder(&stdout)
	var failures []string
	for {
		var r downloadRecord
		if err := dec.Decode(&r); err != nil {
			break
		}
		if r.Error != "" {
			failures = append(failures, fmt.Sprintf("%s@%s: %s", r.Path, r.Version, r.Error))
			continue
		}
		total++
		if fi, err := os.Stat(r.Zip); err == nil && !fi.ModTime().Before(start) {
			fresh++
		}
	}
	if runErr != nil || len(failures) > 0 {
		msg := strings.TrimSpace(stderr.String())
		if len(failures) > 0 {
			msg = strings.Join(failures, "; ")
		}
		if msg == "" && runErr != nil {
			msg = runErr.Error()
		}
		return 0, 0, fmt.Errorf("preload %s (%s): go mod download: %s", m.path, m.label(), firstLines(msg, 6))
	}
	return total, fresh, nil
}

// modfileCopy copies m's go.mod and go.sum into a new temporary directory
// (removed by the caller) and returns it and the go.mod copy, for -modfile:
// the go command may then add go.sum lines or requirements to the copy, and
// the source tree stays as it was.
func modfileCopy(m modInfo) (tmp, modfile string, err error) {
	tmp, err = os.MkdirTemp("", "melcache-preload-*")
	if err != nil {
		return "", "", err
	}
	modfile = filepath.Join(tmp, "go.mod")
	if err := copyFileBytes(filepath.Join(m.dir, "go.mod"), modfile); err != nil {
		os.RemoveAll(tmp)
		return "", "", err
	}
	if err := copyFileBytes(filepath.Join(m.dir, "go.sum"), filepath.Join(tmp, "go.sum")); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(tmp)
		return "", "", err
	}
	return tmp, modfile, nil
}

func copyFileBytes(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// firstLines keeps the first n lines of s, so one failing module among
// hundreds does not flood the error.
func firstLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var out []string
	for sc.Scan() {
		if len(out) == n {
			out = append(out, "…")
			break
		}
		out = append(out, sc.Text())
	}
	return strings.Join(out, "\n")
}
