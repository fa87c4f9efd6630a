package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/mount"
)

func init() { addCommand(newPruneCmd) }

// pruneLong is the help text of `melcache prune`.
const pruneLong = `Prune removes build-cache entries by Go's own use marks (mtimes, refreshed when
a build uses an entry): those unused for --unused-for, then the least recently used
until the entries fit in --max-size. With neither, it removes what Go's own trim
would (unused for 5 days and an hour). When it has removed at least that, it
rewrites trim.txt so the next go command does not scan again.

--modcache-trees also removes extracted module trees whose .zip and .ziphash are
cached: Go re-extracts them when a build needs them (read-only trees included).

Sizes take units: 500MB and 2GB are powers of 1000, 2GiB and 1.5G powers of 1024.
Durations are Go durations or days: 36h, 5d, 1d12h.
--dry-run lists the totals without removing anything and exits 3 when there is
something to remove.

--cache names the caches to prune instead of the build cache (only those are touched):
  gocache       by Go's use marks, as above
  gomodcache    extracted trees Go can re-extract (as --modcache-trees)
  npm, pip, uv, composer, m2repository, fetch
                these tools keep no use marks, so they are pruned only when named,
                and need --max-age or --max-size: files written longer than
                --max-age ago go, then the oldest until the cache fits in --max-size
                (per cache). A removed file is a cache miss: the tool fetches it again.`

// pruneExample are the examples in the help of `melcache prune`.
const pruneExample = `  melcache prune --max-size 2GiB
  melcache prune --unused-for 5d --modcache-trees
  melcache prune --max-size 500MB --dry-run
  melcache prune --cache npm,pip --max-age 30d     # by write time; Go's caches untouched`

func newPruneCmd(g *globals) *cobra.Command {
	var fl pruneFlags
	cmd := &cobra.Command{
		Use:     "prune",
		Short:   "Trim the build cache, least recently used first",
		Long:    pruneLong,
		Example: pruneExample,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return runPrune(cmd, g, &fl, args) },
	}
	fl.register(cmd, true)
	cmd.Flags().StringVar(&fl.maxSize, "max-size", "", "keep the build cache's entries within SIZE (e.g. 500MB, 2GiB, 1.5G)")
	cmd.Flags().StringVar(&fl.unusedFor, "unused-for", "", "remove entries unused for DURATION (e.g. 36h, 5d)")
	cmd.Flags().BoolVar(&fl.dryRun, "dry-run", false, "report what would be removed; change nothing (exit 3 if anything would be)")
	cmd.Flags().BoolVar(&fl.trees, "modcache-trees", false, "also remove extracted module trees that Go can re-extract from cached zips")
	cmd.Flags().BoolVar(&fl.asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&fl.maxAge, "max-age", "", "remove files of the named caches without use marks written longer ago than DURATION (e.g. 30d)")
	fl.caches.register(cmd, "the caches to prune", "gocache")
	return cmd
}

// pruneFlags are the flags of the command runPrune runs.
type pruneFlags struct {
	cacheDirFlags
	maxSize   string
	unusedFor string
	dryRun    bool
	trees     bool
	asJSON    bool
	maxAge    string
	caches    cacheListFlag
}

// runPrune runs the command with its flags and prints the result.
func runPrune(cmd *cobra.Command, g *globals, f *pruneFlags, args []string) error {
	o := mount.PruneOptions{DryRun: f.dryRun, ModcacheTrees: f.trees}
	var err error
	if o.Caches, err = f.caches.caches(); err != nil {
		return err
	}
	if cmd.Flags().Changed("max-age") {
		if o.MaxAge, err = units.ParseDuration(f.maxAge); err != nil || o.MaxAge == 0 {
			return usageErrorf("--max-age: %q: want a positive duration (e.g. 30d)", f.maxAge)
		}
	}
	if cmd.Flags().Changed("max-size") {
		if o.MaxSize, err = units.ParseSize(f.maxSize); err != nil {
			return usageErrorf("--max-size: %v", err)
		}
		if o.MaxSize == 0 {
			return usageErrorf("--max-size: %q removes everything; use melcache clean for that", f.maxSize)
		}
	}
	if cmd.Flags().Changed("unused-for") {
		if o.UnusedFor, err = units.ParseDuration(f.unusedFor); err != nil {
			return usageErrorf("--unused-for: %v", err)
		}
		if o.UnusedFor < mount.MinUnusedFor {
			// Go refreshes use marks hourly: below that every entry
			// looks unused.
			return usageErrorf("--unused-for: %q removes everything (Go refreshes use marks only every %v, so nothing younger looks used); use melcache clean for that", f.unusedFor, mount.MinUnusedFor)
		}
	}
	l, err := f.layout()
	if err != nil {
		return err
	}
	if err := f.recoverRestore(cmd.Context(), g, l); err != nil {
		return err
	}
	o.LockOptions = f.lockOptions(g, l)
	res, err := l.Prune(cmd.Context(), o)
	if err != nil {
		return usageIfLimits(err)
	}
	if f.asJSON {
		if err := writeJSON(g.stdout, res); err != nil {
			return err
		}
	} else {
		printPrune(g, f, o, res)
	}
	removed := res.Entries + res.Trees
	for _, c := range res.Caches {
		removed += c.Files
	}
	if f.dryRun && removed > 0 {
		return checkFound()
	}
	return nil
}

// printPrune prints what prune removed (or would remove), per cache pruned.
func printPrune(g *globals, f *pruneFlags, o mount.PruneOptions, res *mount.PruneResult) {
	verb := "removed"
	if f.dryRun {
		verb = "would remove"
	}
	if o.Caches == nil || slices.Contains(o.Caches, mount.GoCache) {
		fmt.Fprintf(g.stdout, "%s %d build-cache entries (%s); %d kept (%s)\n", verb, res.Entries, units.FormatSize(res.Bytes), res.Kept, units.FormatSize(res.KeptBytes))
	}
	for _, c := range res.Caches {
		fmt.Fprintf(g.stdout, "%s: %s %d files (%s); %d kept (%s)\n", c.Name, verb, c.Files, units.FormatSize(c.Bytes), c.Kept, units.FormatSize(c.KeptBytes))
	}
	if f.trees || slices.Contains(o.Caches, mount.GoModCache) {
		fmt.Fprintf(g.stdout, "%s %d extracted module trees (%s)\n", verb, res.Trees, units.FormatSize(res.TreeBytes))
	}
}

// usageIfLimits makes Prune's refusal of a cache list and limits that do
// not go together (no limit for a cache without use marks, --max-age with
// none named) a usage error, exit 2, like the flags' own checks.
func usageIfLimits(err error) error {
	if errors.Is(err, mount.ErrPruneLimits) {
		return usageErrorf("%v", err)
	}
	return err
}
