package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/internal/units"
)

func init() { addCommand(newDemoCmd) }

// demoReport is what `melcache demo --json` prints.
type demoReport = build.DemoReport

func newDemoCmd(g *globals) *cobra.Command {
	var (
		source string
		keep   bool
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "Show the whole flow on this machine: cold build, snapshot, restore, warm build",
		Long: `demo runs melcache's whole flow with nothing but Go installed:

  1. cold: prepare a fresh cache dir, preload the example's modules (from
     GOPROXY as your go command would), build it with both Go caches in the
     dir and no network;
  2. snapshot the dir into an embedded store (an OCI layout, as 'push' with
     no REF writes under your cache dir, but in the demo's own temporary
     directory, so your snapshots are not touched);
  3. warm: restore the snapshot into a NEW cache dir and build again, with no
     network and no module proxy.

It prints both times, the compile actions of each build and the build-cache
hits and misses. Builds run 'go build -trimpath' (as melange's go/build
does) under 'bwrap --unshare-net' when bubblewrap works here, otherwise as
plain 'go build' with GOPROXY=off and the same caches. Everything is removed
afterwards unless --keep.`,
		Example: `  go run ./cmd/melcache demo          # from a clone of melcache
  melcache demo --source ./mymodule --keep --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runDemo(cmd.Context(), g, source, keep, asJSON) },
	}
	c.Flags().StringVar(&source, "source", build.DemoSource, "Go module to build")
	c.Flags().BoolVar(&keep, "keep", false, "keep the cache dirs, the store and the binaries")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// runDemo runs build.Demo in a temporary directory, removed afterwards
// unless keep, and prints its report.
func runDemo(ctx context.Context, g *globals, source string, keep, asJSON bool) error {
	work, err := os.MkdirTemp("", "melcache-demo-*")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(g.stderr, "melcache: demo files kept in %s\n", work)
	} else {
		defer fsutil.RemoveAll(work)
	}
	rep, err := build.Demo(ctx, build.DemoOptions{Source: source, WorkDir: work, Log: g.log,
		Notice: func(msg string) { fmt.Fprintf(g.stderr, "melcache: %s\n", msg) }})
	if err != nil {
		return err
	}
	if keep {
		rep.WorkDir = work
	}
	if asJSON {
		return writeJSON(g.stdout, rep)
	}
	printDemo(g, rep)
	return nil
}

func printDemo(g *globals, r *demoReport) {
	fmt.Fprintf(g.stdout, "melcache demo: %s, go build -trimpath, sandbox: %s\n\n", r.Source, r.Sandbox)
	w := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\tcold\twarm\t\n")
	fmt.Fprintf(w, "modules (preload | restore)\t%.2fs\t%.2fs\t\n", r.Cold.ModulesSeconds, r.Warm.ModulesSeconds)
	fmt.Fprintf(w, "go build\t%.2fs\t%.2fs\t\n", r.Cold.BuildSeconds, r.Warm.BuildSeconds)
	fmt.Fprintf(w, "total\t%.2fs\t%.2fs\t\n", r.Cold.TotalSeconds, r.Warm.TotalSeconds)
	fmt.Fprintf(w, "compile actions (go build -x)\t%d\t%d\t\n", r.Cold.Compiles, r.Warm.Compiles)
	fmt.Fprintf(w, "compile actions run (GOCACHE misses)\t%d\t%d\t\n", r.Cold.Misses, r.Warm.Misses)
	fmt.Fprintf(w, "compile actions reused (GOCACHE hits)\t%d\t%d\t\n", r.Cold.Hits, r.Warm.Hits)
	fmt.Fprintf(w, "bookkeeping entries written\t%d\t%d\t\n", r.Cold.Bookkeeping, r.Warm.Bookkeeping)
	_ = w.Flush()
	fmt.Fprintf(g.stdout, "\nsnapshot: %d files (%s), %s compressed, pushed in %.2fs to %s\n",
		r.Push.Files, units.FormatSize(r.Push.Bytes), units.FormatSize(r.Push.DataBytes), r.Push.Seconds, r.Store)
	fmt.Fprintf(g.stdout, "warm (restore + build) took %.0f%% of cold (preload + build)\n", r.WarmPercent)
}
