// Package build runs melcache's composite flows as library calls: the
// `melcache build` wrapper around `melange build` ([Run]), the
// cold-snapshot-warm demonstration ([Demo]) and the diagnosis of a cache
// set-up ([Doctor]). It sits above packages mount (the host cache
// directory), envinject (melange YAML) and oci (snapshots); the CLI in
// cmd/melcache only parses flags, prints and maps errors to exit codes.
//
// The failure policy of [Run] is the one docs/architecture.md describes: a
// cache problem never fails a build. It is a warning, and melange runs with
// whatever the cache holds (cold, at worst), unless [Config.Strict], which
// fails before melange runs (or, for the push, after it). Bad input (the
// config, the flags) is not a cache problem: it fails at once, as a
// [*UsageError] when the caller's arguments are at fault.
package build
