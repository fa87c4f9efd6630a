package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

func init() { addCommand(newStatusCmd) }

func newStatusCmd(g *globals) *cobra.Command {
	var (
		f      cacheDirFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the cache directory holds, the last snapshot and the last build's hits",
		Long: `Status reports, per cache, its files and bytes; for the build cache its action and
output entries; for the module cache its modules, versions and extracted trees; and
the oldest and newest use marks. It also shows the snapshot last pushed or pulled
and, after 'melcache mark' (or melcache build), that build's hits and misses.

The other caches melange uses (npm, pip, uv, composer, m2repository, and fetch: the
DIR/sha256:<hex> files) are listed when present, with files, size, volatile files
(logs, locks) and the oldest and newest write times: their tools keep no use marks.`,
		Example: `  melcache status
  melcache status --dir ./melange-cache --json | jq '.lastBuild'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := f.layout()
			if err != nil {
				return err
			}
			st, err := l.Status(cmd.Context(), mount.StatusOptions{})
			if err != nil {
				return err
			}
			// A pending or failed restore is reported, never acted on:
			// status only reads.
			pending := oci.Pending(l)
			if asJSON {
				return writeJSON(g.stdout, struct {
					*mount.Status
					PendingRestore *oci.PendingRestore `json:"pendingRestore,omitempty"`
				}{st, pending})
			}
			printStatus(g, st)
			if pending != nil {
				fmt.Fprintf(g.stdout, "pending restore: %s; fix: %s\n", pending.Describe(), pending.Fix(l))
			}
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(g *globals, st *mount.Status) {
	fmt.Fprintf(g.stdout, "%s (%s layout)\n", st.Dir, st.Mode)
	tw := tabwriter.NewWriter(g.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CACHE\tFILES\tSIZE\tCONTENT\tOLDEST USE\tNEWEST USE")
	for _, c := range st.Caches {
		if !c.Exists {
			fmt.Fprintf(tw, "%s\t-\t-\tmissing (run melcache prepare)\t\t\n", c.Name)
			continue
		}
		content := ""
		switch c.Name {
		case mount.GoCache:
			content = fmt.Sprintf("%d actions, %d outputs", c.Actions, c.Outputs)
		case mount.GoModCache:
			content = fmt.Sprintf("%d modules, %d versions, %d trees", c.Modules, c.Versions, c.Trees)
		default:
			content = fmt.Sprintf("%d volatile (write times)", c.Volatile)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", c.Name, c.Files, units.FormatSize(c.Bytes), content, when(c.OldestUse), when(c.NewestUse))
	}
	tw.Flush()
	if s := st.LastSnapshot; s != nil {
		fmt.Fprintf(g.stdout, "last snapshot: %s %s %s (%d files, %s) at %s\n", s.Direction, s.Ref, s.Digest, s.Files, units.FormatSize(s.Bytes), s.Time.Format(time.RFC3339))
	} else {
		fmt.Fprintln(g.stdout, "last snapshot: none")
	}
	for _, h := range st.LockedBy {
		fmt.Fprintf(g.stdout, "locked by %s\n", h)
	}
	if b := st.LastBuild; b != nil {
		fmt.Fprintf(g.stdout, "last build (since mark at %s): %s\n", b.Since.Format(time.RFC3339), b.Summary())
	} else {
		fmt.Fprintln(g.stdout, "last build: no mark (run melcache mark before a build)")
	}
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}
