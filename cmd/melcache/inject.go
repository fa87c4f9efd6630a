package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/envinject"
)

func init() { addCommand(newInjectCmd) }

type injectFlags struct {
	write, list, diff, check bool
	gomodcache, gocache      string
	set                      []string
	offline, force           bool
	envFile                  string
	jobs                     int
}

// injectLong is the help text of `melcache inject`.
const injectLong = `inject sets GOMODCACHE and GOCACHE in the top-level environment.environment
of melange configs, creating the maps when missing, so Go's module and build
caches live in the directory melange mounts with --cache-dir.

Only the lines added or changed differ: comments, blank lines, key order,
quoting, anchors, line endings and a missing final newline stay as they were,
and a second run changes nothing. A value the config already sets is kept and
reported unless --force.

inject also lints cache settings that defeat the cache (a split module cache
next to go/build steps; GOCACHE or GOMODCACHE outside /var/cache/melange in
the top-level, test or step environment or a runs: export), printing
file:line:col and a one-line fix on stderr.

Like gofmt, it prints the result to stdout unless -w, -l, -d or --check is
given. Directories are walked for *.yaml and *.yml (hidden directories and
symlinks skipped); YAML without a top-level package: is skipped with a note.
Bad input (malformed YAML, duplicate keys, wrong types, non-UTF-8) is reported
as file:line:col and the file is left untouched; other files still run.

With --env-file OUT, no YAML is rewritten: the variables are written to OUT
for 'melange build --env-file OUT', and any FILEs are only checked. The YAML's
own environment wins over an env file.`

// injectExample are the examples in the help of `melcache inject`.
const injectExample = `  melcache inject -w pkg.yaml                     # rewrite in place
  melcache inject -d .                            # review the diff for a whole repo
  melcache inject --check .                       # CI lint: exit 3 if anything would change
  melcache inject --gomodcache /var/cache/melange pkg.yaml   # melange's BUILD-CACHE.md recipe
  melcache inject --offline --set CGO_ENABLED=0 -w pkg.yaml
  melcache inject --env-file melcache.env && melange build --env-file melcache.env pkg.yaml`

func newInjectCmd(g *globals) *cobra.Command {
	f := &injectFlags{}
	cmd := &cobra.Command{
		// stdout is the user's own YAML, rewritten: passed as is.
		Annotations: map[string]string{rawStdout: "true"},
		Use:         "inject [flags] [FILE|DIR|-]...",
		Short:       "Point Go's caches at /var/cache/melange in melange YAML, with a minimal diff",
		Long:        injectLong,
		Example:     injectExample,
		RunE:        func(cmd *cobra.Command, args []string) error { return runInject(cmd.Context(), g, f, args) },
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.write, "write", "w", false, "write the result to the file instead of stdout (atomically, keeping its mode)")
	fl.BoolVarP(&f.list, "list", "l", false, "list files whose result differs from their content")
	fl.BoolVarP(&f.diff, "diff", "d", false, "print a unified diff instead of the result")
	fl.BoolVar(&f.check, "check", false, "exit 3 when a file would change or has a finding (CI lint)")
	fl.StringVar(&f.gomodcache, "gomodcache", envinject.DefaultGoModCache, "guest path for GOMODCACHE")
	fl.StringVar(&f.gocache, "gocache", envinject.DefaultGoCache, "guest path for GOCACHE")
	fl.StringArrayVar(&f.set, "set", nil, "also set `KEY=VALUE` (repeatable)")
	fl.BoolVar(&f.offline, "offline", false, "also set GOPROXY=off, GOTOOLCHAIN=local, GOFLAGS=-mod=mod")
	fl.BoolVar(&f.force, "force", false, "replace values the config already sets")
	fl.StringVar(&f.envFile, "env-file", "", "write the variables to `OUT` for melange build --env-file instead of editing YAML")
	fl.IntVar(&f.jobs, "jobs", runtime.GOMAXPROCS(0), "files processed concurrently")
	return cmd
}

func runInject(ctx context.Context, g *globals, f *injectFlags, args []string) error {
	opts, vars, err := f.options()
	if err != nil {
		return err
	}
	if f.envFile != "" {
		if err := envinject.SaveEnvFile(f.envFile, vars); err != nil {
			return fmt.Errorf("--env-file %w", err)
		}
		if len(args) == 0 {
			return nil
		}
	}
	if len(args) == 0 {
		args = []string{"-"}
	}
	files, walkErrs := envinject.CollectYAML(args)
	if f.write && slices.Contains(files, "-") {
		return usageErrorf("-w cannot write to standard input")
	}
	for _, e := range walkErrs {
		fmt.Fprintf(g.stderr, "%v\n", e)
	}
	res, err := envinject.Files(ctx, files, envinject.FilesOptions{Options: opts, Write: f.write, Jobs: f.jobs, Stdin: g.stdin})
	if err != nil {
		return err
	}
	var t injectTally
	for _, fr := range res {
		if err := t.print(g, f, fr); err != nil {
			return err
		}
	}
	g.log.Debug("inject", "files", len(files), "changed", t.changed, "findings", t.found, "skipped", t.skipped, "errors", t.bad)
	if len(walkErrs) > 0 || t.bad > 0 {
		return &exitError{code: exitFailed}
	}
	if f.check && (t.found > 0 || (t.changed > 0 && f.envFile == "")) {
		return checkFound()
	}
	return nil
}

// options checks inject's flags; it returns envinject's options and their variables.
func (f *injectFlags) options() (envinject.Options, []envinject.Var, error) {
	opts := envinject.Options{GoModCache: f.gomodcache, GoCache: f.gocache, Offline: f.offline, Force: f.force}
	for _, s := range f.set {
		v, err := envinject.ParseVar(s)
		if err != nil {
			return opts, nil, usageErrorf("--set %v", err)
		}
		opts.Set = append(opts.Set, v)
	}
	vars, err := envinject.DefaultVars(opts)
	if err != nil {
		return opts, nil, usageErrorf("%v", err)
	}
	if f.jobs < 1 {
		return opts, nil, usageErrorf("--jobs %d: want at least 1", f.jobs)
	}
	if f.envFile != "" && (f.write || f.list || f.diff) {
		return opts, nil, usageErrorf("--env-file writes no YAML: it cannot be combined with -w, -l or -d")
	}
	if err := envinject.WriteEnvFile(io.Discard, vars); err != nil && f.envFile != "" {
		return opts, nil, usageErrorf("--env-file: %v", err)
	}
	return opts, vars, nil
}
