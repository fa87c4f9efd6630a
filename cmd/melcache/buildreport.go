package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/mount"
)

// buildReport is what `melcache build --json` prints.
type buildReport = build.Report

// runBuild checks build's flags, runs build.Run and prints its report.
// melange's exit status is the command's.
func runBuild(cmd *cobra.Command, g *globals, f *buildFlags, args []string) error {
	cfg, err := buildConfig(f, args)
	if err != nil {
		return err
	}
	stdout := g.rawStdout() // melange's own log, colours and all
	if f.json {
		stdout = g.stderr // stdout holds the JSON report only
	}
	opts := build.Options{
		Runner:      build.ExecRunner{Stdout: stdout, Stderr: g.stderr, Log: g.log},
		Log:         g.log,
		Warn:        func(msg string) { fmt.Fprintf(g.stderr, "melcache: warning: %s\n", msg) },
		Notice:      func(msg string) { fmt.Fprintf(g.stderr, "melcache: %s\n", msg) },
		LockOptions: lockWaitOptions(g, cfg.Layout.Dir, f.noWait),
		Progress:    func() build.Progress { return newTransferBars(g, f.json) },
	}
	rep, err := build.Run(cmd.Context(), cfg, opts)
	if rep.ExitCode >= 0 {
		if perr := printBuildReport(g, f.json, rep); perr != nil {
			return perr
		}
	}
	if err != nil {
		return err
	}
	if rep.ExitCode != 0 {
		return &exitError{code: rep.ExitCode}
	}
	return nil
}

// buildConfig turns build's flags and arguments into a build.Config.
func buildConfig(f *buildFlags, args []string) (build.Config, error) {
	if f.force && !f.rewrite {
		return build.Config{}, usageErrorf("--force needs --rewrite: an env-file cannot override the YAML's own environment")
	}
	ma, err := build.ParseMelangeArgs(args[1:])
	if err != nil {
		return build.Config{}, err
	}
	l, err := mount.New(f.dir, mount.Options{})
	if err != nil {
		return build.Config{}, err
	}
	if ma.CacheDir != "" && !build.SameDir(ma.CacheDir, l.Dir) {
		return build.Config{}, usageErrorf("melange --cache-dir %s conflicts with --dir %s: give the cache directory once, as --dir", ma.CacheDir, l.Dir)
	}
	bin, err := build.FindMelange(f.melange, os.Getenv)
	if err != nil {
		return build.Config{}, err
	}
	to, err := netTimeouts()
	if err != nil {
		return build.Config{}, err
	}
	cfg := build.Config{Layout: l, Timeouts: to, Config: args[0], Melange: bin, MelangeArgs: ma,
		Pull: f.pull, RestoreKeys: f.restoreKeys, Push: f.push, Key: f.key, Go: f.goVersion, Insecure: f.insecure, CACert: f.caCert,
		Strict: f.strict, PushOnFailure: f.pushOnFailure, Preload: f.preload, Rewrite: f.rewrite, Force: f.force, Offline: f.offline,
		CacheProg: f.cacheProg, CacheProgBinary: f.cacheProgBin}
	if f.cacheProgBin != "" && !f.cacheProg {
		return build.Config{}, usageErrorf("--cacheprog-binary needs --cacheprog")
	}
	for _, s := range f.set {
		v, err := envinject.ParseVar(s)
		if err != nil {
			return build.Config{}, usageErrorf("--set %s: %v", s, err)
		}
		cfg.Set = append(cfg.Set, v)
	}
	return cfg, nil
}

// printBuildReport prints the report as a short table, or JSON.
func printBuildReport(g *globals, asJSON bool, r *build.Report) error {
	if asJSON {
		return writeJSON(g.stdout, r)
	}
	w := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "melcache build\t%s\n", r.Config)
	fmt.Fprintf(w, "  melange exit\t%d\n", r.ExitCode)
	switch {
	case r.Pull != nil:
		fmt.Fprintf(w, "  restored\t%s:%s (%s), %d files written, %s downloaded, %.1fs\n", r.Pull.Store, r.Pull.Tag, r.Pull.Resolved, r.Pull.FilesWritten, units.FormatSize(r.Pull.DataBytes), r.Pull.Seconds)
	case r.PullMiss:
		fmt.Fprintf(w, "  restored\tnothing (no matching snapshot)\n")
	}
	if r.Preloaded != nil {
		fmt.Fprintf(w, "  preloaded\t%d modules\n", *r.Preloaded)
	}
	printBuildUse(w, r)
	fmt.Fprintf(w, "  modules downloaded\t%d\n", r.ModulesDownloaded)
	fmt.Fprintf(w, "  bytes added\t%s\n", signedSize(r.BytesAdded))
	if c := r.CacheProg; c != nil {
		fmt.Fprintf(w, "  cacheprog\t%d gets, %d hits, %d misses, %d puts (%s in, %s out)\n", c.Gets, c.Hits, c.Misses, c.Puts, units.FormatSize(c.BytesIn), units.FormatSize(c.BytesOut))
	}
	fmt.Fprintf(w, "  build time\t%.1fs (total %.1fs)\n", r.BuildSeconds, r.TotalSeconds)
	printBuildPush(w, r)
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "  warnings\t%d (above)\n", len(r.Warnings))
	}
	return w.Flush()
}

// printBuildUse prints what the build compiled and reused, and the
// bookkeeping entries apart: they are not compiles.
func printBuildUse(w *tabwriter.Writer, r *build.Report) {
	if r.CompileActions == nil {
		fmt.Fprintf(w, "  compile actions\tunknown (no mark)\n")
		return
	}
	c := r.CompileActions
	line := fmt.Sprintf("%d run, %d reused", c.Run, c.Reused)
	switch {
	case r.CacheWasEmpty && c.Run > 0:
		line += " (first build into an empty cache)"
	case c.Run == 0 && c.Reused > 0:
		line += " (nothing compiled: every package came from the cache)"
	}
	fmt.Fprintf(w, "  compile actions\t%s\n", line)
	u := mount.BuildUse{ModuleIndex: *r.ModuleIndex, Executables: *r.Executables, Other: *r.OtherEntries}
	fmt.Fprintf(w, "  bookkeeping entries\t%s\n", u.Bookkeeping())
}

func printBuildPush(w *tabwriter.Writer, r *build.Report) {
	switch {
	case r.Push != nil && r.Push.Unchanged:
		fmt.Fprintf(w, "  pushed\tnothing new (%s:%s)\n", r.Push.Store, r.Push.Tag)
	case r.Push != nil:
		fmt.Fprintf(w, "  pushed\t%s:%s, %d layers (%s), %.1fs\n", r.Push.Store, r.Push.Tag, r.Push.Layers, units.FormatSize(r.Push.DataBytes), r.Push.Seconds)
	case r.PushSkipped != "":
		fmt.Fprintf(w, "  pushed\tnothing: %s\n", r.PushSkipped)
	}
}

// signedSize formats n bytes, negative ones with a leading "-".
func signedSize(n int64) string {
	if n < 0 {
		return "-" + units.FormatSize(-n)
	}
	return units.FormatSize(n)
}
