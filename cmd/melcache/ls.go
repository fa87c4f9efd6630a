package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/internal/safetext"
	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/oci"
)

func init() { addCommand(newLsCmd) }

// lsLong is the help text of `melcache ls`.
const lsLong = `ls lists the snapshots in REPO (a registry repository, oci:PATH, or nothing
for the embedded store), newest first: tag, creation date, compressed size
(what a cold pull downloads), layers and file count. It reads manifests only.`

// lsExample are the examples in the help of `melcache ls`.
const lsExample = `  melcache ls ghcr.io/acme/gocache
  melcache ls oci:/srv/cache-layout --json
  melcache ls`

func newLsCmd(g *globals) *cobra.Command {
	var fl lsFlags
	c := &cobra.Command{
		Use:     "ls [REPO]",
		Short:   "List the snapshots in a repository, OCI layout or the embedded store",
		Long:    lsLong,
		Example: lsExample,
		Args:    cobra.MaximumNArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runLs(cmd, g, &fl, args) },
	}
	c.Flags().BoolVar(&fl.insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	c.Flags().StringVar(&fl.caCert, caCertFlag, "", caCertUsage)
	c.Flags().BoolVar(&fl.asJSON, "json", false, "print JSON")
	return c
}

// lsFlags are the flags of the command runLs runs.
type lsFlags struct {
	insecure bool
	asJSON   bool
	caCert   string
}

// runLs runs the command with its flags and prints the result.
func runLs(cmd *cobra.Command, g *globals, f *lsFlags, args []string) error {
	ctx := cmd.Context()
	s, err := openRepo(ctx, g, "ls", argOr(args), f.insecure, f.caCert, " (see melcache inspect)")
	if err != nil {
		return err
	}
	ls, err := oci.List(ctx, s)
	if err != nil {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ls)
	}
	if len(ls) == 0 {
		fmt.Fprintf(g.stdout, "no snapshots in %s\n", s)
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tCREATED\tSIZE\tLAYERS\tFILES\tDIGEST")
	for _, l := range ls {
		if l.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tnot a snapshot: %s\n", safetext.Text(l.Tag), safetext.Text(l.Error))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", safetext.Text(l.Tag), l.Created.Format(time.RFC3339), units.FormatSize(l.Size), l.Layers, l.Files, l.Digest)
	}
	return tw.Flush()
}
