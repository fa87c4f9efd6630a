package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/oci"
)

func init() { addCommand(newGCCmd) }

// gcLong is the help text of `melcache gc`.
const gcLong = `gc deletes the snapshots no keep rule keeps: --keep-last N keeps the N newest
(by creation time; tags of one manifest count once), --max-age keeps those
younger than DURATION; with both, a snapshot either rule keeps stays. On a
registry it uses the OCI API's DELETE (the registry must allow it; when it
refuses, gc names the registry's own retention setting). In an OCI layout
(oci:PATH) or the embedded store (no REPO) it also removes the blobs no
remaining snapshot references.

Deleting a snapshot never breaks a kept one: each snapshot's manifest lists
every layer it restores from, so layers shared with kept snapshots stay, and
gc says how many. A builder whose last pushed snapshot was deleted pushes a
full snapshot next time instead of a delta.

With --dry-run, gc exits 3 when it would delete something, 0 when not.`

// gcExample are the examples in the help of `melcache gc`.
const gcExample = `  melcache gc ghcr.io/acme/gocache --keep-last 10
  melcache gc oci:/srv/cache-layout --max-age 14d --dry-run
  melcache gc --keep-last 3 --max-age 720h       # the embedded store`

func newGCCmd(g *globals) *cobra.Command {
	var fl gcFlags
	c := &cobra.Command{
		Use:     "gc [REPO|oci:PATH]",
		Short:   "Delete old snapshots from a repository, OCI layout or the embedded store",
		Long:    gcLong,
		Example: gcExample,
		Args:    cobra.MaximumNArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runGC(cmd, g, &fl, args) },
	}
	c.Flags().IntVar(&fl.keepLast, "keep-last", 0, "keep the N newest snapshots")
	c.Flags().StringVar(&fl.maxAge, "max-age", "", "keep snapshots younger than this (720h, 14d)")
	c.Flags().BoolVar(&fl.dryRun, "dry-run", false, "say what would be deleted; delete nothing")
	c.Flags().BoolVar(&fl.insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	c.Flags().StringVar(&fl.caCert, caCertFlag, "", caCertUsage)
	c.Flags().BoolVar(&fl.asJSON, "json", false, "print JSON")
	return c
}

func printGC(g *globals, res *oci.GCResult, asJSON bool) error {
	if asJSON {
		return writeJSON(g.stdout, res)
	}
	verb := "deleted"
	if res.DryRun {
		verb = "would delete"
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	for _, k := range res.Kept {
		fmt.Fprintf(tw, "kept\t%s\t%s\t%s\t%s\n", strings.Join(k.Tags, ","), k.Created.Format(time.RFC3339), k.Digest, k.Reason)
	}
	for _, d := range res.Deleted {
		why := d.Reason
		if d.SharedBlobs > 0 {
			why += fmt.Sprintf("; %d of its %d blobs stay: kept snapshots use them", d.SharedBlobs, d.Blobs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", verb, strings.Join(d.Tags, ","), d.Created.Format(time.RFC3339), d.Digest, why)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(tw, "skipped\t%s\t-\t%s\t%s\n", strings.Join(s.Tags, ","), s.Digest, s.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	blobVerb := "removed"
	if res.DryRun {
		blobVerb = "would remove"
	}
	fmt.Fprintf(g.stdout, "%s: %s %d snapshots, kept %d", res.Store, verb, len(res.Deleted), len(res.Kept))
	if res.BlobsNote != "" {
		fmt.Fprintf(g.stdout, "; %s\n", res.BlobsNote)
	} else {
		fmt.Fprintf(g.stdout, "; %s %d unreferenced blobs (%s)\n", blobVerb, res.Blobs, units.FormatSize(res.BlobBytes))
	}
	return nil
}

// gcFlags are the flags of the command runGC runs.
type gcFlags struct {
	insecure bool
	dryRun   bool
	asJSON   bool
	caCert   string
	keepLast int
	maxAge   string
}

// runGC runs the command with its flags and prints the result.
func runGC(cmd *cobra.Command, g *globals, f *gcFlags, args []string) error {
	ctx := cmd.Context()
	var age time.Duration
	if f.maxAge != "" {
		var err error
		if age, err = units.ParseDuration(f.maxAge); err != nil || age <= 0 {
			return usageErrorf("--max-age %q: want a positive duration such as 720h or 14d", f.maxAge)
		}
	}
	if f.keepLast < 0 {
		return usageErrorf("--keep-last %d: want a positive count", f.keepLast)
	}
	if f.keepLast == 0 && age == 0 {
		return usageErrorf("give --keep-last N, --max-age DURATION or both: with no rule every snapshot would go")
	}
	if f.keepLast == 0 && age < oci.MinMaxAge {
		return usageErrorf("--max-age %q alone removes every snapshot; give at least %v, or add --keep-last N", f.maxAge, oci.MinMaxAge)
	}
	s, err := openRepo(ctx, g, "gc", argOr(args), f.insecure, f.caCert, "")
	if err != nil {
		return err
	}
	res, err := oci.GC(ctx, s, oci.GCOptions{KeepLast: f.keepLast, MaxAge: age, DryRun: f.dryRun, Log: g.log})
	if res != nil && (err == nil || !f.asJSON) {
		if perr := printGC(g, res, f.asJSON); perr != nil {
			return perr
		}
	}
	if err == nil && f.dryRun && (len(res.Deleted) > 0 || res.Blobs > 0) {
		return checkFound() // like prune --dry-run: 3 means there is work
	}
	return err
}
