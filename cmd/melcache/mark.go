package main

import (
	"fmt"
	"time"

	"github.com/melcache/melcache/mount"
	"github.com/spf13/cobra"
)

func init() { addCommand(newMarkCmd) }

func newMarkCmd(g *globals) *cobra.Command {
	var (
		f      cacheDirFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "mark",
		Short: "Record the start of a build, for status to count its cache hits and misses",
		Long: `Mark moves the use marks (mtimes) of build-cache entries newer than an hour back
to 61 minutes ago, so that Go refreshes every entry the next build uses, and records
the time. After the build, 'melcache status' reports its hits (entries used) and
misses (entries written). melcache build does this itself; use mark when you run
melange yourself.`,
		Example: `  melcache mark --dir ./melange-cache && melange build --cache-dir ./melange-cache pkg.yaml
  melcache status --dir ./melange-cache`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := f.layout()
			if err != nil {
				return err
			}
			if err := f.recoverRestore(cmd.Context(), g, l); err != nil {
				return err
			}
			rec, err := l.Mark(cmd.Context(), mount.MarkOptions{Now: time.Now, LockOptions: f.lockOptions(g, l)})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g.stdout, rec)
			}
			fmt.Fprintf(g.stdout, "marked %s at %s (%d recent entries moved back)\n", l.Dir, rec.Time.Format(time.RFC3339), rec.Clamped)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the mark as JSON")
	return cmd
}
