package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/cacheprog"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
	"github.com/spf13/cobra"
)

func init() { addCommand(newCacheprogCmd) }

func newCacheprogCmd(g *globals) *cobra.Command {
	var dir, statsJSON, forward string
	var rf cacheprogRemoteFlags
	cmd := &cobra.Command{
		Use:   "cacheprog [--dir DIR] [--stats-json FILE] [--restore-keys PREFIX] [REF]",
		Short: "Serve Go's build cache from DIR/gocache as a GOCACHEPROG program",
		Long: `cacheprog speaks Go's GOCACHEPROG protocol on stdin and stdout, keeping objects
in DIR/gocache in Go's own layout, so plain go, push, pull, verify, prune and
use marks work on the same directory. On close it prints one line of counts to
stderr (gets, hits, misses, puts, bytes, time waiting on the remote) and, with
--stats-json, writes them as JSON.

--forward SOCKET is the guest side of 'melcache build --cacheprog': it pipes the
protocol to the host's socket. A bare melcache with $` + cacheprog.ForwardEnv + ` set does
the same (GOCACHEPROG cannot carry arguments through a melange env-file).

With REF (a snapshot: HOST/REPO:TAG, oci:PATH:TAG, @sha256:... pins; or
--restore-keys prefixes, as pull finds them) a local miss is fetched lazily:
only the zstd frames holding that object are read, with range requests, and
verified against the snapshot's index. A snapshot of format 1 is pulled whole
(gocache only) first. See docs/cacheprog.md.`,
		Example: `  GOCACHEPROG="melcache cacheprog --dir ./melange-cache" go build ./...
  GOCACHEPROG="melcache cacheprog --dir /tmp/c --stats-json /tmp/c.json" go test ./...
  GOCACHEPROG="melcache cacheprog --dir /tmp/c ghcr.io/acme/gocache:main" go build ./...`,
		Annotations: map[string]string{rawStdout: "true"}, // the protocol, not text
		Args:        cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if forward != "" {
				return cacheprog.Forward(cmd.Context(), forward, g.stdin, g.rawStdout())
			}
			l, err := mount.New(dir, mount.Options{})
			if err != nil {
				return err
			}
			remote, err := rf.open(cmd.Context(), g, l, args)
			if err != nil {
				return err
			}
			rep, err := cacheprog.ServeLocal(cmd.Context(), l.CacheDir(mount.GoCache), g.stdin, g.rawStdout(),
				cacheprog.LocalOptions{Log: g.log, Remote: remote})
			if err != nil && rep.Gets+rep.Puts == 0 {
				return err // the store did not open: the error alone, nothing written
			}
			if !g.quiet {
				fmt.Fprintln(g.stderr, rep)
			}
			if statsJSON != "" {
				err = errors.Join(err, rep.WriteJSON(statsJSON))
			}
			// The go command waits for the end of this stdout before it
			// goes on (cmd/go/internal/cache's ProgCache.Close), which
			// otherwise comes with the exit: a few milliseconds of
			// unwinding and address-space teardown on every build. The
			// report and the JSON are out by now, so a build step that
			// reads them after the go command finds them.
			if c, ok := g.rawStdout().(io.Closer); ok {
				c.Close()
			}
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", mount.DefaultDir, "cache directory; objects live in DIR/gocache")
	_ = cmd.MarkFlagDirname("dir")
	cmd.Flags().StringVar(&statsJSON, "stats-json", "", "write the counts as JSON to FILE on close")
	rf.register(cmd)
	cmd.Flags().StringVar(&forward, "forward", "", "guest side of melcache build --cacheprog: pipe the protocol to the host's SOCKET")
	return cmd
}

// cacheprogRemoteFlags choose the snapshot a session fetches misses from.
type cacheprogRemoteFlags struct {
	restoreKeys []string
	insecure    bool
	caCert      string
}

func (f *cacheprogRemoteFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&f.restoreKeys, "restore-keys", nil, "tag prefixes to fall back to, in order, when REF's tag does not exist (repeat or comma-separate)")
	cmd.Flags().BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	cmd.Flags().StringVar(&f.caCert, caCertFlag, "", caCertUsage)
}

// open returns the lazy remote of REF (nil without REF and restore keys,
// or when the snapshot was pulled whole instead).
func (f *cacheprogRemoteFlags) open(ctx context.Context, g *globals, l mount.Layout, args []string) (cacheprog.Remote, error) {
	if len(args) == 0 && len(f.restoreKeys) == 0 {
		return nil, nil
	}
	to, err := netTimeouts()
	if err != nil {
		return nil, err
	}
	t, err := build.OpenRef(ctx, argOr(args), build.RefOptions{Insecure: f.insecure, CACert: f.caCert, Timeouts: to, Log: g.log})
	var ue *build.UsageError
	if errors.As(err, &ue) {
		return nil, usageErrorf("%v", ue.Err)
	} else if err != nil {
		return nil, err
	}
	keys, err := build.ExpandRestoreKeys(f.restoreKeys, oci.KeyOptions{})
	if errors.As(err, &ue) {
		return nil, usageErrorf("%v", ue.Err)
	} else if err != nil {
		return nil, err
	}
	ref := t.Tag
	if t.Digest != "" {
		ref = t.Digest
	}
	if ref == "" && len(keys) == 0 {
		return nil, usageErrorf("cacheprog %s: REF names no tag or digest; add :TAG or --restore-keys", argOr(args))
	}
	return cacheprog.OpenRemote(ctx, l, t.Store, ref, keys, g.log)
}
