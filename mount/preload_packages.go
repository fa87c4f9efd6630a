package mount

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/melcache/melcache/envinject"
	"golang.org/x/mod/module"
)

// goBuild is what one go/build step compiles, as melange's
// pkg/build/pipelines/go/build.yaml runs it: `cd ${{inputs.modroot}}` then
// `go build -tags "${{inputs.tags}}" ... ${{inputs.packages}}`.
type goBuild struct {
	// packages are the step's space-separated `packages` input (package
	// patterns or .go files, relative to the modroot).
	packages []string
	// tags is the step's comma-separated `tags` input.
	tags string
}

// stepBuild reads a go/build step's packages and tags. A non-empty reason
// says why they cannot be known before the build, and the whole go.mod is
// downloaded instead.
func stepBuild(subst map[string]string, s *envinject.Step) (goBuild, string) {
	if s.With["deps"] != "" {
		// `go get` and `go mod tidy` run in the guest change the module
		// graph: the packages' modules today are not the build's.
		return goBuild{}, "the step has deps"
	}
	pkgs, err := substitute(subst, s.With["packages"])
	if err != nil {
		return goBuild{}, "packages: " + err.Error()
	}
	tags, err := substitute(subst, s.With["tags"])
	if err != nil {
		return goBuild{}, "tags: " + err.Error()
	}
	if strings.ContainsAny(pkgs+tags, "$`*?[") {
		// Shell expansion happens in the guest; globs and variables are
		// not the go command's patterns.
		return goBuild{}, fmt.Sprintf("packages %q or tags %q need the shell", pkgs, tags)
	}
	b := goBuild{packages: strings.Fields(pkgs), tags: strings.TrimSpace(tags)}
	if len(b.packages) == 0 {
		// The input is required by melange; an empty one builds the
		// modroot's package, as `go build` with no arguments does.
		b.packages = []string{"."}
	}
	return b, ""
}

// goCommand matches a shell script that runs the go command or make (which
// in a Go project usually runs go), e.g. `go generate ./...`.
var goCommand = regexp.MustCompile(`(?m)(?:^|[\s;&|(])((?:go|make)(?:\s+[a-z]+)?)(?:\s|$)`)

// goRunsStep returns the go or make command of the first runs: step that
// calls one, and its line; "" when none does.
func goRunsStep(steps []envinject.StepAt) (string, int) {
	for _, s := range steps {
		if m := goCommand.FindStringSubmatch(s.Runs); m != nil {
			return m[1], s.Line
		}
	}
	return "", 0
}

// listedPackage is the part of `go list -json` output preload reads.
type listedPackage struct {
	ImportPath string
	Module     *struct {
		Path    string
		Version string
		Main    bool
		Replace *struct {
			Path    string
			Version string
		}
	}
	Error *struct{ Err string }
}

// listDeps downloads the modules that provide the packages of m's go/build
// steps and their dependencies, with `go list -deps -mod=mod` on a copy of
// go.mod and go.sum: to load the packages the go command fetches the .mod
// files of the module graph and the zips of exactly the modules it imports
// from, which is what a no-network `go build` of them needs. It returns the
// number of those module versions and how many zips are newer than the
// start of the call. ok is false when the listing failed (a package error,
// a module it could not fetch): the caller then downloads the whole go.mod,
// whose error, if any, is the one to show.
func (p *preloader) listDeps(ctx context.Context, m modInfo, modcache string, builds []goBuild) (total, fresh int, ok bool, err error) {
	tmp, modfile, err := modfileCopy(m)
	if err != nil {
		return 0, 0, false, err
	}
	defer os.RemoveAll(tmp)
	start := p.now()
	zips := map[string]string{} // path@version → zip
	for _, b := range builds {
		args := []string{"list", "-deps", "-e", "-mod=mod", "-modfile=" + modfile, "-json=ImportPath,Module,Error"}
		if b.tags != "" {
			args = append(args, "-tags", b.tags)
		}
		args = append(args, b.packages...)
		cmd := exec.CommandContext(ctx, p.goCmd, args...)
		cmd.Dir = m.dir
		cmd.Env = p.goEnv(modcache)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return 0, 0, false, ctx.Err()
			}
			p.log.Warn("go list failed: downloading every module of go.mod", "module", m.path, "packages", strings.Join(b.packages, " "), "error", firstLines(strings.TrimSpace(stderr.String()), 3))
			return 0, 0, false, nil
		}
		dec := json.NewDecoder(&stdout)
		for {
			var lp listedPackage
			if err := dec.Decode(&lp); err != nil {
				break
			}
			if lp.Error != nil {
				p.log.Warn("go list: package error: downloading every module of go.mod", "module", m.path, "package", lp.ImportPath, "error", firstLines(lp.Error.Err, 3))
				return 0, 0, false, nil
			}
			mod := lp.Module
			if mod == nil || mod.Main {
				continue // the standard library, or the main module
			}
			path, version := mod.Path, mod.Version
			if r := mod.Replace; r != nil {
				if r.Version == "" {
					continue // replaced by a directory: nothing to download
				}
				path, version = r.Path, r.Version
			}
			zip, err := zipPath(modcache, path, version)
			if err != nil {
				return 0, 0, false, fmt.Errorf("preload %s (%s): %w", m.path, m.label(), err)
			}
			zips[path+"@"+version] = zip
		}
	}
	for mv, zip := range zips {
		fi, err := os.Stat(zip)
		if err != nil {
			// go list loaded the package, so its module is extracted; a
			// missing zip would make the build's verification fail.
			p.log.Warn("module zip missing after go list: downloading every module of go.mod", "module", mv, "zip", zip)
			return 0, 0, false, nil
		}
		total++
		if !fi.ModTime().Before(start) {
			fresh++
		}
	}
	return total, fresh, true, nil
}

// zipPath is where the go command keeps a module version's zip
// (cmd/go/internal/modfetch: GOMODCACHE/cache/download/<escaped
// path>/@v/<escaped version>.zip).
func zipPath(modcache, path, version string) (string, error) {
	ep, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	return filepath.Join(modcache, "cache", "download", filepath.FromSlash(ep), "@v", ev+".zip"), nil
}
