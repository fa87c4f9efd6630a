package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"sort"
	"strings"
)

// pipelineRunner runs a config's steps (pkg/build/pipeline.go pipelineRunner).
type pipelineRunner struct {
	sb    *sandbox
	cfg   *configuration
	arch  string
	ws    string // host path of the workspace
	log   io.Writer
	debug bool
}

// runPipelines runs steps in order for the package (or subpackage) whose
// output directory is contextDir (pkg/build/pipeline.go runPipelines).
func (r *pipelineRunner) runPipelines(ctx context.Context, steps []pipeline, contextDir string) error {
	subst, err := substitutions(r.cfg, r.arch, contextDir)
	if err != nil {
		return err
	}
	for i := range steps {
		if err := r.runPipeline(ctx, &steps[i], subst, nil, ""); err != nil {
			return fmt.Errorf("unable to run pipeline: %w", err)
		}
	}
	return nil
}

// runPipeline runs one step and its children. Children inherit the parent's
// environment and working directory, their own values winning
// (pkg/config/config.go propagatePipelines).
func (r *pipelineRunner) runPipeline(ctx context.Context, p *pipeline, subst, parentEnv map[string]string, parentWorkdir string) error {
	if p.If != "" {
		return fmt.Errorf("step %q: if: conditions are not implemented by the stand-in", p.identity())
	}
	env := maps.Clone(parentEnv)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, p.Environment)
	workdir := parentWorkdir
	if p.WorkDir != "" {
		wd, err := mutate(subst, p.WorkDir)
		if err != nil {
			return err
		}
		if !path.IsAbs(wd) {
			wd = path.Join(guestWorkspace, wd)
		}
		workdir = wd
	}
	if workdir == "" {
		workdir = guestWorkspace
	}

	if p.Uses != "" {
		return r.runUses(ctx, p, subst, env, workdir)
	}

	if p.Runs != "" {
		if id := p.identity(); id != "???" {
			logf(r.log, "INFO", "running step %q", id)
		}
		script, err := mutate(subst, p.Runs)
		if err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
		if err := r.runScript(ctx, script, env, workdir); err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
	}
	for i := range p.Pipeline {
		if err := r.runPipeline(ctx, &p.Pipeline[i], subst, env, workdir); err != nil {
			return err
		}
	}
	return nil
}

// runScript runs a shell fragment in the guest (pkg/build/pipeline.go
// buildEvalRunCommand: set -e, create and enter the working directory, the
// fragment, exit 0; envOverride is PATH plus the step's environment).
func (r *pipelineRunner) runScript(ctx context.Context, fragment string, env map[string]string, workdir string) error {
	debugOption := ' '
	if r.debug {
		debugOption = 'x'
	}
	script := fmt.Sprintf("set -e%c\n[ -d '%s' ] || mkdir -p '%s'\ncd '%s'\n%s\nexit 0", debugOption, workdir, workdir, workdir, fragment)
	envOverride := map[string]string{"PATH": defaultPath}
	maps.Copy(envOverride, env)
	return r.sb.run(ctx, envOverride, "/bin/sh", "-c", script)
}

// runUses runs a built-in pipeline.
func (r *pipelineRunner) runUses(ctx context.Context, p *pipeline, subst, env map[string]string, workdir string) error {
	logf(r.log, "INFO", "running step %q", p.identity())
	switch p.Uses {
	case "go/build":
		with, err := validateWith(p.With, goBuildInputs)
		if err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
		m, err := withInputs(subst, with)
		if err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
		script, err := mutate(m, goBuildScript)
		if err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
		if err := r.runScript(ctx, script, env, workdir); err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
		return nil
	case "git-checkout":
		with, err := validateWith(p.With, gitCheckoutInputs)
		if err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
		m, err := withInputs(subst, with)
		if err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
		in := func(k string) string { return m["${{inputs."+k+"}}"] }
		if err := gitCheckout(ctx, r.log, r.ws, workdir, gitCheckoutSpec{
			Repository: in("repository"), Destination: in("destination"), Depth: in("depth"),
			Branch: in("branch"), Tag: in("tag"), ExpectedCommit: in("expected-commit"),
		}); err != nil {
			return fmt.Errorf("step %q: %w", p.identity(), err)
		}
		return nil
	}
	return fmt.Errorf("step %q: pipeline %q is not implemented by the stand-in (it knows go/build and git-checkout)", p.identity(), p.Uses)
}

// input is one declared input of a built-in pipeline.
type input struct {
	def      string
	required bool
}

// validateWith fills defaults and checks required inputs
// (pkg/build/pipeline.go validateWith). Undeclared inputs are an error here,
// so a typo in a test config fails loudly.
func validateWith(with map[string]string, inputs map[string]input) (map[string]string, error) {
	out := maps.Clone(with)
	if out == nil {
		out = map[string]string{}
	}
	for k := range out {
		if _, ok := inputs[k]; !ok {
			return nil, fmt.Errorf("unknown input %q", k)
		}
	}
	names := make([]string, 0, len(inputs))
	for k := range inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := inputs[k]
		if out[k] == "" {
			out[k] = v.def
		}
		if v.required && out[k] == "" {
			return nil, fmt.Errorf("required input %q for pipeline is missing", k)
		}
	}
	return out, nil
}

// goBuildInputs are the inputs of pkg/build/pipelines/go/build.yaml, with
// its defaults.
var goBuildInputs = map[string]input{
	"go-package":    {def: "go"},
	"packages":      {required: true},
	"tags":          {},
	"toolchaintags": {def: "netgo,osusergo"},
	"output":        {required: true},
	"vendor":        {def: "false"},
	"modroot":       {def: "."},
	"prefix":        {def: "usr"},
	"ldflags":       {},
	"strip":         {def: "-w"},
	"install-dir":   {def: "bin"},
	"deps":          {},
	"experiments":   {},
	"extra-args":    {},
	"amd64":         {def: "v2"},
	"arm64":         {def: "v8.0"},
	"buildmode":     {def: "default"},
	"tidy":          {def: "false"},
}

// goBuildScript does what pkg/build/pipelines/go/build.yaml's step does, in
// the same order: enter modroot (go.mod must be there), optional tidy, the
// unconditional GOMODCACHE export to melange's cache mount (whatever the
// YAML's environment says), optional deps with tidy and vendor, the
// go.mod.local/go.sum.local overlay, then go build with -trimpath into
// targets.contextdir/prefix/install-dir/output. Written for POSIX sh (the
// host's /bin/sh may be dash, where the pipeline's `==` tests do not exist).
const goBuildScript = `cd "${{inputs.modroot}}"
if [ ! -e go.mod ]; then
  echo "go.mod not found in ${{inputs.modroot}}"
  exit 1
fi
if [ "${{inputs.tidy}}" = true ]; then go mod tidy; fi
LDFLAGS="${{inputs.strip}} ${{inputs.ldflags}}"
BASE_PATH="${{inputs.prefix}}/${{inputs.install-dir}}/${{inputs.output}}"
export GOMODCACHE=/var/cache/melange/gomodcache
if [ -n "${{inputs.deps}}" ]; then
  for dep in ${{inputs.deps}}; do go get "$dep"; done
  go mod tidy
  if [ "${{inputs.vendor}}" = true ]; then go mod vendor; fi
fi
if [ -e /home/build/go.mod.local ]; then cp /home/build/go.mod.local go.mod; fi
if [ -e /home/build/go.sum.local ]; then cp /home/build/go.sum.local go.sum; fi
GOAMD64="${{inputs.amd64}}" GOARM64="${{inputs.arm64}}" GOEXPERIMENT="${{inputs.experiments}}" go build -o "${{targets.contextdir}}/${BASE_PATH}" -tags "${{inputs.toolchaintags}},${{inputs.tags}}" -ldflags "${LDFLAGS}" -trimpath -buildmode ${{inputs.buildmode}} ${{inputs.extra-args}} ${{inputs.packages}}
`

// gitCheckoutInputs are the inputs of pkg/build/pipelines/git-checkout.yaml
// the stand-in supports.
var gitCheckoutInputs = map[string]input{
	"repository":      {required: true},
	"destination":     {def: "."},
	"depth":           {def: "unset"},
	"branch":          {},
	"tag":             {},
	"expected-commit": {},
}

// hostPath maps a guest path under /home/build to the host workspace.
func hostPath(ws, guest string) (string, error) {
	rel, ok := strings.CutPrefix(path.Clean(guest), guestWorkspace)
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", fmt.Errorf("path %s is outside the workspace %s", guest, guestWorkspace)
	}
	return ws + rel, nil
}
