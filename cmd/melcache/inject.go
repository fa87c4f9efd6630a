package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/melcache/melcache/envinject"
	"github.com/spf13/cobra"
)

func init() { addCommand(newInjectCmd) }

// stdinName names standard input in messages, as gofmt does.
const stdinName = "<standard input>"

type injectFlags struct {
	write, list, diff, check bool
	gomodcache, gocache      string
	set                      []string
	offline, force           bool
	envFile                  string
	jobs                     int
}

func newInjectCmd(g *globals) *cobra.Command {
	f := &injectFlags{}
	cmd := &cobra.Command{
		// stdout is the user's own YAML, rewritten: passed as is.
		Annotations: map[string]string{rawStdout: "true"},
		Use:         "inject [flags] [FILE|DIR|-]...",
		Short:       "Point Go's caches at /var/cache/melange in melange YAML, with a minimal diff",
		Long: `inject sets GOMODCACHE and GOCACHE in the top-level environment.environment
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
own environment wins over an env file.`,
		Example: `  melcache inject -w pkg.yaml                     # rewrite in place
  melcache inject -d .                            # review the diff for a whole repo
  melcache inject --check .                       # CI lint: exit 3 if anything would change
  melcache inject --gomodcache /var/cache/melange pkg.yaml   # melange's BUILD-CACHE.md recipe
  melcache inject --offline --set CGO_ENABLED=0 -w pkg.yaml
  melcache inject --env-file melcache.env && melange build --env-file melcache.env pkg.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error { return runInject(g, f, args) },
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

func runInject(g *globals, f *injectFlags, args []string) error {
	opts := envinject.Options{GoModCache: f.gomodcache, GoCache: f.gocache, Offline: f.offline, Force: f.force}
	for _, s := range f.set {
		v, err := envinject.ParseVar(s)
		if err != nil {
			return usageErrorf("--set %v", err)
		}
		opts.Set = append(opts.Set, v)
	}
	vars, err := envinject.DefaultVars(opts)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if f.jobs < 1 {
		return usageErrorf("--jobs %d: want at least 1", f.jobs)
	}
	if f.envFile != "" && (f.write || f.list || f.diff) {
		return usageErrorf("--env-file writes no YAML: it cannot be combined with -w, -l or -d")
	}
	if f.envFile != "" {
		var b bytes.Buffer
		if err := envinject.WriteEnvFile(&b, vars); err != nil {
			return usageErrorf("--env-file: %v", err)
		}
		if fi, err := os.Stat(f.envFile); err == nil && fi.IsDir() {
			return fmt.Errorf("--env-file %s: is a directory; name the file to write", f.envFile)
		}
		if err := writeFileAtomic(f.envFile, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("--env-file: %w", err)
		}
		if len(args) == 0 {
			return nil
		}
	}
	if len(args) == 0 {
		args = []string{"-"}
	}
	files, walkErrs := collectYAML(args)
	for _, a := range files {
		if a == "-" && f.write {
			return usageErrorf("-w cannot write to standard input")
		}
	}
	r := &injectRun{g: g, f: f, opts: opts}
	failed := len(walkErrs) > 0
	for _, e := range walkErrs {
		fmt.Fprintf(g.stderr, "%v\n", e)
	}
	res := r.processAll(files)
	var changed, found, skipped, bad int
	for i, fr := range res {
		<-fr.done
		if fr.err != nil {
			failed = true
			bad++
			fmt.Fprintf(g.stderr, "%s\n", fr.err)
			continue
		}
		if fr.skipped {
			skipped++
			if !g.quiet {
				fmt.Fprintf(g.stderr, "%s: skipped: %v\n", files[i], envinject.ErrNotMelange)
			}
			continue
		}
		if fr.changed {
			changed++
		}
		found += len(fr.res.Findings)
		if _, err := g.stdout.Write(fr.stdout); err != nil {
			return err
		}
		if _, err := g.stderr.Write(fr.stderr); err != nil {
			return err
		}
	}
	g.log.Debug("inject", "files", len(files), "changed", changed, "findings", found, "skipped", skipped, "errors", bad)
	if failed {
		return &exitError{code: exitFailed}
	}
	if f.check && (found > 0 || (changed > 0 && f.envFile == "")) {
		return checkFound()
	}
	return nil
}

// collectYAML expands directory arguments to the *.yaml and *.yml files
// under them, in lexical order. Hidden directories (.git, .melcache) and
// symlinks met while walking are skipped; named files are taken as given.
func collectYAML(args []string) (files []string, errs []error) {
	for _, a := range args {
		if a == "-" {
			files = append(files, a)
			continue
		}
		fi, err := os.Stat(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			if d.IsDir() {
				if p != a && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return files, errs
}

type injectRun struct {
	g    *globals
	f    *injectFlags
	opts envinject.Options
}

// fileResult is one file's outcome; output is buffered so that concurrent
// workers still print in argument order.
type fileResult struct {
	done           chan struct{}
	res            envinject.Result
	changed        bool
	skipped        bool
	err            error
	stdout, stderr []byte
}

// processAll runs the files through a pool of f.jobs workers. Each result's
// done channel closes when it is ready.
func (r *injectRun) processAll(files []string) []*fileResult {
	res := make([]*fileResult, len(files))
	for i := range res {
		res[i] = &fileResult{done: make(chan struct{})}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(r.f.jobs, max(len(files), 1)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r.process(files[i], res[i])
				close(res[i].done)
			}
		}()
	}
	go func() {
		for i := range files {
			work <- i
		}
		close(work)
		wg.Wait()
	}()
	return res
}

func (r *injectRun) process(name string, fr *fileResult) {
	var src []byte
	var err error
	var mode fs.FileMode
	target := name
	if name == "-" {
		name = stdinName
		src, err = io.ReadAll(r.g.stdin)
	} else {
		if r.f.write {
			// Write through a symlink to its target, not over the link.
			if t, e := filepath.EvalSymlinks(name); e == nil {
				target = t
			}
		}
		var fi fs.FileInfo
		if fi, err = os.Stat(target); err == nil {
			mode = fi.Mode()
			src, err = os.ReadFile(target)
		}
	}
	if err != nil {
		fr.err = err
		return
	}
	res, err := envinject.Inject(src, r.opts)
	if errors.Is(err, envinject.ErrNotMelange) {
		fr.skipped = true
		return
	}
	if err != nil {
		var pe *envinject.Error
		if errors.As(err, &pe) {
			fr.err = fmt.Errorf("%s:%v", name, err)
		} else {
			fr.err = fmt.Errorf("%s: %v", name, err)
		}
		return
	}
	fr.res, fr.changed = res, res.Changed
	var out, diag bytes.Buffer
	for _, k := range res.Kept {
		if r.f.envFile != "" {
			fmt.Fprintf(&diag, "%s:%d:%d: %s: %s overrides the env file's %s\n", name, k.Line, k.Col, k.Key, k.Value, k.Want)
		} else {
			fmt.Fprintf(&diag, "%s:%d:%d: kept %s: %s (melcache sets %s; --force replaces it)\n", name, k.Line, k.Col, k.Key, k.Value, k.Want)
		}
	}
	for _, fd := range res.Findings {
		fmt.Fprintf(&diag, "%s:%d:%d: %s\n\tfix: %s\n", name, fd.Line, fd.Col, fd.Msg, fd.Fix)
	}
	switch {
	case r.f.envFile != "":
		// Checked only.
	case r.f.list || r.f.write || r.f.diff || r.f.check:
		if res.Changed && (r.f.list || r.f.check) {
			fmt.Fprintln(&out, name)
		}
		if res.Changed && r.f.diff {
			out.Write(envinject.Diff(name+".orig", name, src, res.Out))
		}
		if res.Changed && r.f.write {
			if err := writeFileAtomic(target, res.Out, mode); err != nil {
				fr.err = fmt.Errorf("%s: %w", name, err)
				return
			}
		}
	default:
		out.Write(res.Out)
	}
	fr.stdout, fr.stderr = out.Bytes(), diag.Bytes()
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory and a rename, so readers see the old or the new content,
// never a mix. The new file gets mode's permission bits and, when the
// caller may set them, the old file's owner and group: -w must not change
// who owns a config. (mount.WriteFileAtomic does not keep the owner.)
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".melcache-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if mode == 0 {
		mode = 0o644
	}
	if err := tmp.Chmod(mode.Perm() | mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		tmp.Close()
		return err
	}
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			_ = tmp.Chown(int(st.Uid), int(st.Gid)) // best effort: only root may give files away
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not all filesystems support it
		d.Close()
	}
	return nil
}
