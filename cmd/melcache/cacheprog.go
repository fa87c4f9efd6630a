package main

import (
	"errors"
	"fmt"

	"github.com/melcache/melcache/cacheprog"
	"github.com/melcache/melcache/mount"
	"github.com/spf13/cobra"
)

func init() { addCommand(newCacheprogCmd) }

// errNoLazyFetch is what a REF gets until snapshots record per-file
// positions (issue 13's format 2): a lazy fetch needs them.
var errNoLazyFetch = errors.New("remote fetch needs snapshot format 2; not yet available")

func newCacheprogCmd(g *globals) *cobra.Command {
	var dir, statsJSON, forward string
	cmd := &cobra.Command{
		Use:   "cacheprog [--dir DIR] [--stats-json FILE] [REF]",
		Short: "Serve Go's build cache from DIR/gocache as a GOCACHEPROG program",
		Long: `cacheprog speaks Go's GOCACHEPROG protocol on stdin and stdout, keeping objects
in DIR/gocache in Go's own layout, so plain go, push, pull, verify, prune and
use marks work on the same directory. On close it prints one line of counts to
stderr (gets, hits, misses, puts, bytes, time waiting on the remote) and, with
--stats-json, writes them as JSON.

--forward SOCKET is the guest side of 'melcache build --cacheprog': it pipes the
protocol to the host's socket. A bare melcache with $` + cacheprog.ForwardEnv + ` set does
the same (GOCACHEPROG cannot carry arguments through a melange env-file).

REF (a lazy fetch from a snapshot) is not available yet. See docs/cacheprog.md.`,
		Example: `  GOCACHEPROG="melcache cacheprog --dir ./melange-cache" go build ./...
  GOCACHEPROG="melcache cacheprog --dir /tmp/c --stats-json /tmp/c.json" go test ./...`,
		Annotations: map[string]string{rawStdout: "true"}, // the protocol, not text
		Args:        cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if forward != "" {
				return cacheprog.Forward(cmd.Context(), forward, g.stdin, g.rawStdout())
			}
			if len(args) == 1 {
				return fmt.Errorf("cacheprog %s: %w", args[0], errNoLazyFetch)
			}
			l, err := mount.New(dir, mount.Options{})
			if err != nil {
				return err
			}
			rep, err := cacheprog.ServeLocal(cmd.Context(), l.CacheDir(mount.GoCache), g.stdin, g.rawStdout(),
				cacheprog.LocalOptions{Log: g.log})
			if err != nil && rep.Gets+rep.Puts == 0 {
				return err // the store did not open: the error alone, nothing written
			}
			if !g.quiet {
				fmt.Fprintln(g.stderr, rep)
			}
			if statsJSON != "" {
				err = errors.Join(err, rep.WriteJSON(statsJSON))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", mount.DefaultDir, "cache directory; objects live in DIR/gocache")
	_ = cmd.MarkFlagDirname("dir")
	cmd.Flags().StringVar(&statsJSON, "stats-json", "", "write the counts as JSON to FILE on close")
	cmd.Flags().StringVar(&forward, "forward", "", "guest side of melcache build --cacheprog: pipe the protocol to the host's SOCKET")
	return cmd
}
