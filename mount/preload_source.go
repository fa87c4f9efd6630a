package mount

import (
	"context"
	"errors"
	"fmt"
	"go/version"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"
)

// preloadSource is a source tree and the main modules to preload from it.
type preloadSource struct {
	root  string // absolute path of the tree
	label string // how messages name the tree (a path, or repository@ref)
	// modDirs are the module directories, absolute.
	modDirs []string
	// builds are, per module directory, the go/build steps that build
	// from it: only the modules providing their packages are downloaded.
	// A directory without builds (a --source tree, or a step whose
	// packages are not known) gets all of its go.mod's modules.
	builds map[string][]goBuild
	// work is the go.work file the modules came from, if any.
	work     string
	checkout *Checkout
	// buildGo is the Go version the config's build installs ("1.26" from a
	// go-1.26, go~1.26 or go-1.26=1.26.0-r0 package), if known, and
	// buildGoPkg that package as the config writes it.
	buildGo, buildGoPkg string
	cleanup             func()
}

// modInfo is one main module.
type modInfo struct {
	dir, rel, path string
	src            *preloadSource
	vendored       bool
	file           *modfile.File
}

func (m modInfo) label() string { return m.src.name(filepath.Join(m.rel, "go.mod")) }

// name is how messages name a file of the tree.
func (s *preloadSource) name(rel string) string {
	if s.checkout != nil {
		return s.label + ":" + filepath.ToSlash(rel)
	}
	return filepath.Join(s.label, rel)
}

// skipDir reports directories a module search never enters: the go command
// ignores vendor/, testdata/ and names starting with "." or "_" in patterns.
func skipDir(name string) bool {
	return name == "vendor" || name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// findModules lists the main modules of the tree at root: those its
// top-level go.work uses, else every directory holding a go.mod. The walk
// stays within the source's own modules: besides what skipDir names, it
// never enters a cache (skip, a cache dir holding melcache's state, a Go
// module cache), whose go.mod files are other modules' (issue 12:
// `preload --source .` walked into ./melange-cache and tried to download
// the dependencies of every cached module).
func findModules(root string, skip ...string) ([]string, error) {
	if b, err := os.ReadFile(filepath.Join(root, "go.work")); err == nil {
		wf, err := modfile.ParseWork(filepath.Join(root, "go.work"), b, nil)
		if err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
		var dirs []string
		for _, u := range wf.Use {
			dirs = append(dirs, filepath.Join(root, filepath.FromSlash(u.Path)))
		}
		if len(dirs) == 0 {
			return nil, fmt.Errorf("preload: %s uses no module", filepath.Join(root, "go.work"))
		}
		return dirs, nil
	}
	skipAbs := map[string]bool{}
	for _, d := range skip {
		if a, err := filepath.Abs(d); err == nil {
			skipAbs[filepath.Clean(a)] = true
		}
	}
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (skipDir(d.Name()) || skipAbs[filepath.Clean(p)] || isCacheTree(p, d.Name())) {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "go.mod" {
			dirs = append(dirs, filepath.Dir(p))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("preload: no go.mod under %s", root)
	}
	sort.Strings(dirs)
	return dirs, nil
}

// isCacheTree reports a directory that holds caches, not sources: a cache
// dir with melcache's state (StateName), a Go module cache (its
// cache/download), or an extracted module version (module@version: '@'
// is never part of an import path).
func isCacheTree(dir, name string) bool {
	if strings.Contains(name, "@") {
		return true
	}
	for _, marker := range []string{StateName, filepath.Join("cache", "download")} {
		if fi, err := os.Lstat(filepath.Join(dir, marker)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// readModules parses each module's go.mod.
func readModules(src preloadSource) ([]modInfo, error) {
	var mods []modInfo
	for _, dir := range src.modDirs {
		rel, err := filepath.Rel(src.root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("preload: module directory %s is outside %s", dir, src.label)
		}
		path := filepath.Join(dir, "go.mod")
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("preload: no go.mod in %s", src.name(rel))
		} else if err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
		f, err := modfile.ParseLax(src.name(filepath.Join(rel, "go.mod")), b, nil)
		if err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
		if f.Module == nil {
			return nil, fmt.Errorf("preload: %s: no module line", src.name(filepath.Join(rel, "go.mod")))
		}
		m := modInfo{dir: dir, rel: rel, path: f.Module.Mod.Path, src: &src, file: f}
		if _, err := os.Stat(filepath.Join(dir, "vendor", "modules.txt")); err == nil {
			m.vendored = true
		}
		mods = append(mods, m)
	}
	return mods, nil
}

// ToolchainError reports a go line (of a go.mod or go.work) that the Go a
// build will use cannot satisfy. Preload returns it, wrapped, before it
// downloads anything.
type ToolchainError struct {
	File     string // file name as messages show it
	Line     int
	Needs    string // "1.99"
	Have     string // "go1.26.8", or "go-1.26" for a config's Go package
	Why      string // what pins the Go used
	Solution string
}

func (e *ToolchainError) Error() string {
	return fmt.Sprintf("%s:%d: go %s is newer than %s, and %s: the build would fail; %s",
		e.File, e.Line, e.Needs, e.Have, e.Why, e.Solution)
}

// checkToolchains compares each go.mod's (and the go.work's) go line with
// the Go the build will use, before anything is downloaded:
//
//   - with GOTOOLCHAIN=local (in the environment, or in the config's
//     environment, as wolfi's build-common.env sets it), the local Go must be
//     at least the go line: the go command refuses otherwise and cannot
//     switch toolchains;
//   - a config that installs a versioned Go package (go-1.26) must install
//     at least the go line's release, since the build has no network to
//     fetch a newer toolchain.
//
// A newer toolchain line is only a suggestion under GOTOOLCHAIN=local (the
// go command ignores it), so it is logged, not refused.
func (p *preloader) checkToolchains(ctx context.Context, src preloadSource, mods []modInfo) error {
	local := p.getenv("GOTOOLCHAIN") == "local" || p.cfgEnv["GOTOOLCHAIN"] == "local"
	why := "GOTOOLCHAIN=local forbids switching toolchains"
	if p.getenv("GOTOOLCHAIN") != "local" && local {
		why = "the config sets GOTOOLCHAIN=local"
	}
	var have string
	if local {
		v, err := p.localGoVersion(ctx)
		if err != nil {
			return err
		}
		have = v
	}
	type goLine struct {
		file    string
		line    int
		goVer   string
		tcName  string
		tcLine  int
		isWork  bool
		workDir string
	}
	var lines []goLine
	for _, m := range mods {
		gl := goLine{file: m.label()}
		if m.file.Go != nil {
			gl.goVer, gl.line = m.file.Go.Version, m.file.Go.Syntax.Start.Line
		}
		if m.file.Toolchain != nil {
			gl.tcName, gl.tcLine = m.file.Toolchain.Name, m.file.Toolchain.Syntax.Start.Line
		}
		lines = append(lines, gl)
	}
	if b, err := os.ReadFile(filepath.Join(src.root, "go.work")); err == nil {
		if wf, err := modfile.ParseWork("go.work", b, nil); err == nil {
			gl := goLine{file: src.name("go.work"), isWork: true}
			if wf.Go != nil {
				gl.goVer, gl.line = wf.Go.Version, wf.Go.Syntax.Start.Line
			}
			if wf.Toolchain != nil {
				gl.tcName, gl.tcLine = wf.Toolchain.Name, wf.Toolchain.Syntax.Start.Line
			}
			lines = append(lines, gl)
		}
	}
	for _, gl := range lines {
		if gl.goVer == "" {
			continue
		}
		if local && have != "" && version.Compare("go"+gl.goVer, have) > 0 {
			return &ToolchainError{File: gl.file, Line: gl.line, Needs: gl.goVer, Have: "the local Go (" + have + ")",
				Why: why, Solution: "build with Go " + gl.goVer + " or later, or without GOTOOLCHAIN=local"}
		}
		if src.buildGo != "" && version.Compare("go"+gl.goVer, "go"+src.buildGo+".999") > 0 {
			return &ToolchainError{File: gl.file, Line: gl.line, Needs: gl.goVer, Have: "the config's Go package (" + src.buildGoPkg + ")",
				Why: "the build cannot download a newer toolchain", Solution: "install go-" + goMinor(gl.goVer) + " or later in environment.contents.packages"}
		}
		if local && have != "" && gl.tcName != "" && version.Compare(gl.tcName, have) > 0 {
			p.log.Info("toolchain line ignored under GOTOOLCHAIN=local", "file", fmt.Sprintf("%s:%d", gl.file, gl.tcLine), "toolchain", gl.tcName, "local", have)
		}
	}
	return nil
}

// goMinor returns the language version ("1.26") of a go line ("1.26.3").
func goMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return v
}

// localGoVersion asks the go command which Go it is, from a neutral
// directory with GOTOOLCHAIN=local so no go.mod can make it switch.
func (p *preloader) localGoVersion(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, p.goCmd, "env", "GOVERSION")
	cmd.Dir = os.TempDir()
	cmd.Env = append(append([]string(nil), p.env...), "GOTOOLCHAIN=local", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("preload: %s env GOVERSION: %w", p.goCmd, err)
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !version.IsValid(v) {
		// A development toolchain ("devel go1.27-…") is newer than any
		// release a go.mod can name: nothing to check.
		p.log.Debug("local Go version not comparable; skipping the toolchain check", "version", v)
		return "", nil
	}
	return v, nil
}
