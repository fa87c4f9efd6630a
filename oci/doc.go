// Package oci stores cache snapshots as OCI 1.1 artifacts: reproducible tar +
// zstd data layers with a delta index, pushed to and pulled from a registry,
// an OCI image layout on disk, or the embedded store under the user's cache
// directory. docs/format.md is the normative description of the artifact.
//
// The library is what the CLI calls (cmd/melcache push, pull, ls, inspect):
//
//	ref, _ := oci.ParseRef("ghcr.io/acme/gocache:main", oci.RefOptions{})
//	store, tag, _ := oci.OpenStore(ctx, ref, oci.StoreOptions{})
//	res, err := oci.Push(ctx, layout, store, tag, oci.Options{Lock: held})
//	res, err = oci.Pull(ctx, layout, store, tag, oci.Options{RestoreKeys: []string{"go-1.26-"}})
//
// Push holds the cache directory's lock shared (builds may run), Pull holds
// it exclusively; both accept a lock the caller already holds
// (Options.Lock). RecoverInterrupted, which every command calls before it
// reads or changes the caches, finishes or rolls back a restore that was
// interrupted; RecoveryPending says whether one is. List and Inspect read
// snapshots without restoring them; ExpandKey expands key templates.
package oci
