// Command melcache makes Go builds inside melange start warm: it prepares the
// host cache directory, points Go's caches at it in melange YAML, snapshots
// the caches as OCI artifacts and restores them on another builder.
//
// Each subcommand lives in its own file and is a thin shell over the mount,
// envinject and oci packages.
package main

import "os"

func main() { os.Exit(Main()) }
