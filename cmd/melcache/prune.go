package main

import (
	"fmt"

	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/mount"
	"github.com/spf13/cobra"
)

func init() { addCommand(newPruneCmd) }

func newPruneCmd(g *globals) *cobra.Command {
	var (
		f                  cacheDirFlags
		maxSize, unusedFor string
		dryRun, trees      bool
		asJSON             bool
	)
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Trim the build cache, least recently used first",
		Long: `Prune removes build-cache entries by Go's own use marks (mtimes, refreshed when
a build uses an entry): those unused for --unused-for, then the least recently used
until the entries fit in --max-size. With neither, it removes what Go's own trim
would (unused for 5 days and an hour). When it has removed at least that, it
rewrites trim.txt so the next go command does not scan again.

--modcache-trees also removes extracted module trees whose .zip and .ziphash are
cached: Go re-extracts them when a build needs them (read-only trees included).

Sizes take units: 500MB and 2GB are powers of 1000, 2GiB and 1.5G powers of 1024.
Durations are Go durations or days: 36h, 5d, 1d12h.
--dry-run lists the totals without removing anything and exits 3 when there is
something to remove.`,
		Example: `  melcache prune --max-size 2GiB
  melcache prune --unused-for 5d --modcache-trees
  melcache prune --max-size 500MB --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o := mount.PruneOptions{DryRun: dryRun, ModcacheTrees: trees}
			var err error
			if cmd.Flags().Changed("max-size") {
				if o.MaxSize, err = units.ParseSize(maxSize); err != nil {
					return usageErrorf("--max-size: %v", err)
				}
				if o.MaxSize == 0 {
					return usageErrorf("--max-size: %q removes everything; use melcache clean for that", maxSize)
				}
			}
			if cmd.Flags().Changed("unused-for") {
				if o.UnusedFor, err = units.ParseDuration(unusedFor); err != nil {
					return usageErrorf("--unused-for: %v", err)
				}
				if o.UnusedFor < mount.MinUnusedFor {
					// Go refreshes use marks hourly: below that
					// every entry looks unused.
					return usageErrorf("--unused-for: %q removes everything (Go refreshes use marks only every %v, so nothing younger looks used); use melcache clean for that", unusedFor, mount.MinUnusedFor)
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
				return err
			}
			if asJSON {
				if err := writeJSON(g.stdout, res); err != nil {
					return err
				}
			} else {
				verb := "removed"
				if dryRun {
					verb = "would remove"
				}
				fmt.Fprintf(g.stdout, "%s %d build-cache entries (%s); %d kept (%s)\n", verb, res.Entries, units.FormatSize(res.Bytes), res.Kept, units.FormatSize(res.KeptBytes))
				if trees {
					fmt.Fprintf(g.stdout, "%s %d extracted module trees (%s)\n", verb, res.Trees, units.FormatSize(res.TreeBytes))
				}
			}
			if dryRun && res.Entries+res.Trees > 0 {
				return checkFound()
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&maxSize, "max-size", "", "keep the build cache's entries within SIZE (e.g. 500MB, 2GiB, 1.5G)")
	cmd.Flags().StringVar(&unusedFor, "unused-for", "", "remove entries unused for DURATION (e.g. 36h, 5d)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be removed; change nothing (exit 3 if anything would be)")
	cmd.Flags().BoolVar(&trees, "modcache-trees", false, "also remove extracted module trees that Go can re-extract from cached zips")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
