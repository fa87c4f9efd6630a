package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/oci"
)

func argOr(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// printResult prints a push or pull result as a line or two, or JSON.
func printResult(w io.Writer, asJSON bool, r *oci.Result) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	where := r.Store
	if r.Tag != "" {
		where += ":" + r.Tag
	}
	switch {
	case r.Direction == "push" && r.Unchanged:
		fmt.Fprintf(w, "unchanged: %s@%s (%d files, %s); nothing uploaded\n", where, r.Digest, r.Files, units.FormatSize(r.Bytes))
	case r.Direction == "push":
		fmt.Fprintf(w, "pushed %s@%s: %d files (%s), %d new layers (%s), %d blobs already there, %.1fs\n",
			where, r.Digest, r.Files, units.FormatSize(r.Bytes), r.Layers, units.FormatSize(r.DataBytes), r.BlobsSkipped, r.Seconds)
		if r.Base != "" {
			printBase(w, r)
		}
		if r.Compacted != "" {
			fmt.Fprintf(w, "compacted: %s\n", r.Compacted)
		}
	default:
		fmt.Fprintf(w, "pulled %s@%s (%s): %d files (%s), %d files written from %d layers (%s), %d layers not needed, %.1fs\n",
			where, r.Digest, r.Resolved, r.Files, units.FormatSize(r.Bytes), r.FilesWritten, r.Layers, units.FormatSize(r.DataBytes), r.BlobsSkipped, r.Seconds)
	}
	if r.Writing > 0 {
		fmt.Fprintf(w, "skipped %d GOCACHE entries still being written by a build\n", r.Writing)
	}
	if r.Other > 0 {
		fmt.Fprintf(w, "skipped %d entries that are neither files nor directories\n", r.Other)
	}
	if r.Bad > 0 {
		fmt.Fprintf(w, "skipped %d cache files (%s) that their cache's verification found bad (see the warnings)\n", r.Bad, units.FormatSize(r.BadBytes))
	}
	if r.ModIndex > 0 {
		fmt.Fprintf(w, "left out %d module-index entries (%s): Go rebuilds them in milliseconds\n", r.ModIndex, units.FormatSize(r.ModIndexBytes))
	}
	return nil
}

// printBase says which snapshot a push was a delta of, and by which rule
// (docs/format.md, "Deltas: choosing the base").
func printBase(w io.Writer, r *oci.Result) {
	fmt.Fprintf(w, "delta of %s (%s)", r.Base, r.BaseRule)
	if r.BaseStore != "" {
		fmt.Fprintf(w, " in %s, %d blobs mounted", r.BaseStore, r.BlobsMounted)
	}
	fmt.Fprintln(w)
}
