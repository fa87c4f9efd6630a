package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
	"github.com/spf13/cobra"
)

// cacheDirFlags are the flags of every command that works on a cache
// directory: where it is, how it is organised, and whether to wait for its
// lock.
type cacheDirFlags struct {
	dir    string
	recipe bool
	noWait bool
}

// register adds --dir and --recipe, and --no-wait when the command locks.
func (f *cacheDirFlags) register(cmd *cobra.Command, locks bool) {
	cmd.Flags().StringVar(&f.dir, "dir", mount.DefaultDir, "cache directory (melange build --cache-dir)")
	_ = cmd.MarkFlagDirname("dir")
	cmd.Flags().BoolVar(&f.recipe, "recipe", false, "DIR is GOMODCACHE itself (melange's docs/BUILD-CACHE.md); state is kept outside DIR")
	if locks {
		cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "fail at once, naming the holder, when another process holds the cache lock")
	}
}

func (f *cacheDirFlags) layout() (mount.Layout, error) {
	return mount.New(f.dir, mount.Options{Recipe: f.recipe})
}

// recoverRestore completes or rolls back a restore that a killed pull left
// behind (oci.RecoverInterrupted) before a command reads or changes the
// caches. status and doctor only report a pending journal: they never change
// the caches.
func (f *cacheDirFlags) recoverRestore(ctx context.Context, g *globals, l mount.Layout) error {
	return recoverFirst(ctx, g, l, f.lockOptions(g, l))
}

// recoverFirst is recoverRestore for commands without cacheDirFlags: it
// says on stderr what it finished.
func recoverFirst(ctx context.Context, g *globals, l mount.Layout, lo mount.LockOptions) error {
	did, err := oci.RecoverInterrupted(ctx, l, oci.RecoverOptions{LockOptions: lo})
	if did != "" {
		fmt.Fprintf(g.stderr, "melcache: %s in %s\n", did, l.Dir)
	}
	return err
}

// lockOptions say, once, who holds the lock when the command has to wait:
// a silent wait behind another build looks like a hang.
func (f *cacheDirFlags) lockOptions(g *globals, l mount.Layout) mount.LockOptions {
	return lockWaitOptions(g, l.Dir, f.noWait)
}

// lockWaitOptions are the lock options of every command that reports a
// wait on stderr: one line naming dir and the holders.
func lockWaitOptions(g *globals, dir string, noWait bool) mount.LockOptions {
	return mount.LockOptions{NoWait: noWait, OnWait: func(hs []mount.Holder) {
		who := "another process"
		if len(hs) > 0 {
			var s []string
			for _, h := range hs {
				s = append(s, h.String())
			}
			who = strings.Join(s, ", ")
		}
		fmt.Fprintf(g.stderr, "melcache: waiting for the lock on %s, held by %s\n", dir, who)
	}}
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
