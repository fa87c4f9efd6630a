package oci

// sameFile reports whether a local file entry holds the same content as a
// base (or index) entry, for the purpose of deltas, verify and a merge
// pull. It is the one place that decides which byte differences count: a
// GOCACHE "-a" entry that differs from the base only in its time field is
// the same entry (docs/format.md, "Deltas").
func sameFile(local, base *Entry) bool {
	return local.Size == base.Size && local.SHA256 == base.SHA256
}
