// Command melcache makes Go builds inside melange start warm: it prepares the
// host cache directory, points Go's caches at it in melange YAML, snapshots
// the caches as OCI artifacts and restores them on another builder.
//
// Each subcommand lives in its own file and is a thin shell over the mount,
// envinject and oci packages.
package main

import (
	"os"

	"github.com/melcache/melcache/cacheprog"
)

func main() {
	// The cacheprog forwarder inside melange runs bare (GOCACHEPROG holds a
	// path, no arguments): see cacheprog.ForwardEnv.
	if sock := os.Getenv(cacheprog.ForwardEnv); sock != "" && len(os.Args) == 1 {
		os.Args = append(os.Args, "cacheprog", "--forward", sock)
	}
	os.Exit(Main())
}
