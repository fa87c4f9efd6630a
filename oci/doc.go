// Package oci stores cache snapshots as OCI 1.1 artifacts: reproducible tar +
// zstd data layers with a delta index, pushed to and pulled from a registry,
// an OCI image layout on disk, or the embedded store under the user's cache
// directory. docs/format.md is the normative description of the artifact.
package oci
