package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/internal/safetext"
	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/oci"
)

func init() { addCommand(newInspectCmd) }

// inspectLong is the help text of `melcache inspect`.
const inspectLong = `inspect reads a snapshot's manifest, config and index and shows each data
layer: the cache it restores into, its generation, the files it holds and how
many of them the snapshot still takes from it (the rest are dead bytes that
compaction drops), then the chain of base snapshots this one is a delta of.`

// inspectExample are the examples in the help of `melcache inspect`.
const inspectExample = `  melcache inspect ghcr.io/acme/gocache:main
  melcache inspect oci:/srv/cache-layout:nightly --json
  melcache inspect                                # embedded store, tag latest`

func newInspectCmd(g *globals) *cobra.Command {
	var fl inspectFlags
	c := &cobra.Command{
		Use:     "inspect [REF]",
		Short:   "Show a snapshot's layers, what each restores and its generation chain",
		Long:    inspectLong,
		Example: inspectExample,
		Args:    cobra.MaximumNArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runInspect(cmd, g, &fl, args) },
	}
	c.Flags().BoolVar(&fl.insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	c.Flags().StringVar(&fl.caCert, caCertFlag, "", caCertUsage)
	c.Flags().BoolVar(&fl.asJSON, "json", false, "print JSON")
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// inspectFlags are the flags of the command runInspect runs.
type inspectFlags struct {
	insecure bool
	asJSON   bool
	caCert   string
}

// runInspect runs the command with its flags and prints the result.
func runInspect(cmd *cobra.Command, g *globals, f *inspectFlags, args []string) error {
	ctx := cmd.Context()
	to, err := netTimeouts()
	if err != nil {
		return err
	}
	t, err := build.OpenRef(ctx, argOr(args), build.RefOptions{Insecure: f.insecure, CACert: f.caCert, Timeouts: to, Log: g.log})
	if err != nil {
		return err
	}
	s, tag, want := t.Store, t.Tag, t.Tag
	if t.Digest != "" {
		want = t.Digest
	}
	if want == "" {
		want, tag = build.DefaultTag, build.DefaultTag
	}
	r, err := oci.Inspect(ctx, s, want)
	if err != nil {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	w := g.stdout
	name := s.String()
	if tag != "" {
		name += ":" + tag
	}
	fmt.Fprintf(w, "snapshot  %s@%s\n", name, r.Digest)
	// Snapshot strings are escaped field by field (tabs and newlines too,
	// which would break the layout); the command's stdout escapes the rest.
	fmt.Fprintf(w, "created   %s\n", safetext.Text(r.Annotations[oci.AnnotationCreated]))
	fmt.Fprintf(w, "arch      %s   go %s   format v%d\n", safetext.Text(r.Config.Arch), safetext.Text(orDash(r.Config.GoVersion)), r.Config.FormatVersion)
	fmt.Fprintf(w, "content   %d files, %d directories, %s\n", r.IndexFiles, r.IndexDirs, units.FormatSize(r.Config.Size))
	for i, d := range r.Indexes {
		fmt.Fprintf(w, "index %d   %s (%s)\n", i, d.Digest, units.FormatSize(d.Size))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tCACHE\tGEN\tFILES\tRESTORES\tZSTD\tTAR\tDIGEST")
	for i, l := range r.Layers {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d files, %s\t%s\t%s\t%s\n", i, safetext.Text(string(l.Cache)), l.Generation, l.Files,
			l.LiveFiles, units.FormatSize(l.LiveBytes), units.FormatSize(l.Compressed), units.FormatSize(l.Size), l.Digest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "chain (newest first):")
	for _, c := range r.Chain {
		if c.Missing {
			fmt.Fprintf(w, "  %s  (no longer in the store)\n", c.Digest)
			continue
		}
		fmt.Fprintf(w, "  %s  %s  %s\n", c.Digest, c.Created.Format(time.RFC3339), safetext.Text(orDash(c.Key)))
	}
	return nil
}
