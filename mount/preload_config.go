package mount

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/melcache/melcache/envinject"
)

// setBuildGo records the Go version the config's build installs, when its
// Go package pins one.
func (src *preloadSource) setBuildGo(cfg *envinject.Config) {
	if cfg.Go != nil && cfg.Go.Version != "" {
		src.buildGo, src.buildGoPkg = cfg.Go.Version, cfg.Go.Spec
	}
}

// fromConfig finds the sources and modroots of a melange config.
// sourceDir is melange's --source-dir, "" for its default (the config's
// directory).
func (p *preloader) fromConfig(ctx context.Context, file, sourceDir string) (preloadSource, error) {
	if sourceDir == "" {
		sourceDir = filepath.Dir(file)
	}
	cfg, err := envinject.ReadConfig(file)
	if err != nil {
		return preloadSource{}, fmt.Errorf("preload: %w", err)
	}
	p.cfgEnv = cfg.Environment
	subst := configSubstitutions(cfg)

	var src preloadSource
	src.setBuildGo(cfg)
	steps := cfg.BuildSteps()
	var checkout *envinject.StepAt
	for i, s := range steps {
		if s.Uses == "git-checkout" {
			if checkout != nil {
				return src, fmt.Errorf("preload: %s:%d: a second git-checkout step (the first is at line %d): preload one source with --source instead", file, s.Line, checkout.Line)
			}
			checkout = &steps[i]
		}
	}
	destination, err := p.fetchSource(ctx, file, sourceDir, subst, checkout, &src)
	if err != nil {
		return src, err
	}

	// The modroots of the go/build steps, relative to where the sources
	// are (the checkout's destination under /home/build).
	seen := map[string]bool{}
	builds, whole := map[string][]goBuild{}, map[string]bool{}
	for _, s := range steps {
		if s.Uses != "go/build" && s.Uses != "go/build/v2" {
			continue
		}
		modroot := s.With["modroot"]
		if modroot == "" {
			modroot = "."
		}
		modroot, err := substitute(subst, modroot)
		if err != nil {
			return src, fmt.Errorf("preload: %s:%d: go/build modroot: %w", file, s.Line, err)
		}
		rel, err := guestRelative(destination, s.WorkDir, modroot)
		if err != nil {
			return src, fmt.Errorf("preload: %s:%d: %w", file, s.Line, err)
		}
		dir := filepath.Join(src.root, filepath.FromSlash(rel))
		if !seen[dir] {
			seen[dir] = true
			src.modDirs = append(src.modDirs, dir)
		}
		b, why := stepBuild(subst, s.Step)
		if why != "" {
			p.log.Info("downloading every module of go.mod", "modroot", rel, "reason", fmt.Sprintf("%s:%d: %s", file, s.Line, why))
			whole[dir] = true
			continue
		}
		builds[dir] = append(builds[dir], b)
	}
	if script, line := goRunsStep(steps); script != "" {
		// A runs: step that calls go (or make) may build or test more than
		// the go/build packages: keep every module of each modroot.
		p.log.Info("downloading every module of go.mod", "reason", fmt.Sprintf("%s:%d: a runs: step calls %s", file, line, script))
		builds = nil
	}
	for dir := range whole {
		delete(builds, dir)
	}
	src.builds = builds
	if len(src.modDirs) == 0 {
		// No go/build step (go/install, or hand-written runs:): preload
		// every module of the sources.
		if src.modDirs, err = findModules(src.root, p.skip...); err != nil {
			return src, err
		}
	}
	return src, nil
}

// fetchSource sets src.root and src.label to the sources a config builds:
// sourceDir (melange's --source-dir, by default the config's directory)
// without a git-checkout step, else a clone of its repository (a relative
// local repository is read from sourceDir, as melange clones in the
// workspace where the source dir's files are) (src.checkout, and
// src.cleanup removes it). It returns the checkout's destination under
// /home/build ("." by default).
func (p *preloader) fetchSource(ctx context.Context, file, sourceDir string, subst map[string]string, checkout *envinject.StepAt, src *preloadSource) (destination string, err error) {
	destination = "."
	if checkout == nil {
		dir, err := filepath.Abs(sourceDir)
		if err != nil {
			return destination, err
		}
		src.root, src.label = dir, sourceDir
		return destination, nil
	}
	with := map[string]string{}
	for k, v := range checkout.With {
		sv, err := substitute(subst, v)
		if err != nil {
			return destination, fmt.Errorf("preload: %s:%d: git-checkout %s: %w", file, checkout.Line, k, err)
		}
		with[k] = sv
	}
	if with["repository"] == "" {
		return destination, fmt.Errorf("preload: %s:%d: git-checkout has no repository", file, checkout.Line)
	}
	if with["destination"] != "" {
		destination = with["destination"]
	}
	if r := with["repository"]; isLocalRelative(r) {
		abs, err := filepath.Abs(filepath.Join(sourceDir, r))
		if err != nil {
			return destination, err
		}
		with["repository"] = abs
	}
	dir, co, err := p.clone(ctx, file, checkout.Line, with)
	src.cleanup = func() { os.RemoveAll(dir) }
	if err != nil {
		return destination, err
	}
	src.root, src.checkout = dir, co
	src.label = co.Repository
	if co.Ref != "" {
		src.label += "@" + co.Ref
	}
	return destination, nil
}

// isLocalRelative reports whether a git-checkout repository is a relative
// local path (not a URL, not scp-like host:path, not absolute).
func isLocalRelative(repo string) bool {
	if repo == "" || filepath.IsAbs(repo) || strings.Contains(repo, "://") {
		return false
	}
	// git reads "host:path" as ssh unless a slash comes before the colon.
	if i := strings.IndexByte(repo, ':'); i >= 0 && !strings.Contains(repo[:i], "/") {
		return false
	}
	return true
}

// guestRelative maps a go/build modroot, seen from the step's working
// directory in the guest, to a path relative to the checkout destination.
func guestRelative(destination, workdir, modroot string) (string, error) {
	const ws = "/home/build"
	abs := func(p, base string) string {
		if path.IsAbs(p) {
			return path.Clean(p)
		}
		return path.Join(base, p)
	}
	wd := ws
	if workdir != "" {
		wd = abs(workdir, ws)
	}
	dest := abs(destination, ws)
	root := abs(modroot, wd)
	rel, ok := strings.CutPrefix(root, dest)
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", fmt.Errorf("go/build modroot %s is outside the git-checkout destination %s", root, dest)
	}
	if rel = strings.TrimPrefix(rel, "/"); rel == "" {
		rel = "."
	}
	return rel, nil
}

// configSubstitutions is melange's ${{...}} map for the keys a
// git-checkout or modroot uses (pkg/build/pipeline.go NewSubstitutionMap).
func configSubstitutions(cfg *envinject.Config) map[string]string {
	m := map[string]string{
		"package.name":         cfg.Package.Name,
		"package.version":      cfg.Package.Version,
		"package.epoch":        strconv.FormatUint(cfg.Package.Epoch, 10),
		"package.full-version": fmt.Sprintf("%s-r%d", cfg.Package.Version, cfg.Package.Epoch),
	}
	for k, v := range cfg.Vars {
		if sv, err := substitute(m, v); err == nil {
			m["vars."+k] = sv
		}
	}
	return m
}

// substitute replaces ${{key}} from m; an unknown key is an error, as in
// melange ("variable %s not defined").
func substitute(m map[string]string, s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		key := strings.TrimSpace(s[i+3 : i+j])
		v, ok := m[key]
		if !ok {
			return "", fmt.Errorf("variable %s not defined", key)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+2:]
	}
}

// clone checks out a git-checkout step's repository into a new temporary
// directory, the way melange's git-checkout pipeline does for the inputs
// preload needs: `git clone --depth 1 --branch TAG` (full history for a
// branch with an expected commit), then HEAD, or for a tag the annotated
// tag object, must be the expected commit. The caller removes the directory.
func (p *preloader) clone(ctx context.Context, file string, line int, with map[string]string) (string, *Checkout, error) {
	repo, tag, branch, expected := with["repository"], with["tag"], with["branch"], with["expected-commit"]
	if tag != "" && branch != "" {
		return "", nil, fmt.Errorf("preload: %s:%d: git-checkout has both branch (%s) and tag (%s)", file, line, branch, tag)
	}
	dir, err := os.MkdirTemp("", "melcache-preload-src-*")
	if err != nil {
		return "", nil, err
	}
	ref := tag
	if ref == "" {
		ref = branch
	}
	co := &Checkout{Repository: repo, Ref: ref}
	url := repo
	if filepath.IsAbs(repo) {
		// A plain local path makes git ignore --depth; file:// keeps the
		// clone shallow.
		url = "file://" + repo
	}
	args := []string{"clone", "--quiet", "--config=advice.detachedHead=false"}
	if ref != "" {
		args = append(args, "--branch", ref)
	}
	if !(branch != "" && expected != "") && with["depth"] != "-1" {
		args = append(args, "--depth", "1")
	}
	args = append(args, "--", url, dir)
	p.log.Info("cloning", "repository", repo, "ref", ref)
	if _, err := p.git(ctx, "", args...); err != nil {
		return dir, nil, fmt.Errorf("preload: %s:%d: git-checkout of %s: %w", file, line, repo, err)
	}
	head, err := p.git(ctx, dir, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return dir, nil, err
	}
	co.Commit = head
	if expected == "" || expected == head {
		return dir, co, nil
	}
	if tag != "" {
		if obj, err := p.git(ctx, dir, "rev-parse", "--verify", "--end-of-options", "refs/tags/"+tag); err == nil && obj == expected {
			p.log.Warn("expected-commit is the annotated tag object, not the commit", "tag", tag, "commit", head)
			return dir, co, nil
		}
		return dir, nil, fmt.Errorf("preload: %s:%d: git-checkout: expected commit %s for %s, found %s", file, line, expected, tag, head)
	}
	if branch != "" {
		if _, err := p.git(ctx, dir, "merge-base", "--is-ancestor", expected, head); err == nil {
			if _, err := p.git(ctx, dir, "reset", "--quiet", "--hard", expected); err != nil {
				return dir, nil, err
			}
			co.Commit = expected
			return dir, co, nil
		}
	}
	return dir, nil, fmt.Errorf("preload: %s:%d: git-checkout: expected commit %s on %s, found %s", file, line, expected, orHEAD(branch), head)
}

func orHEAD(branch string) string {
	if branch == "" {
		return "HEAD"
	}
	return branch
}

// git runs git and returns its trimmed stdout; errors carry its stderr.
func (p *preloader) git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.gitCmd, args...)
	cmd.Dir = dir
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("git %s: %s", args[0], firstLines(msg, 4))
	}
	return strings.TrimSpace(stdout.String()), nil
}
