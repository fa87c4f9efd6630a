package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/mount"
)

func init() { addCommand(newPrepareCmd) }

// prepareLong is the help text of `melcache prepare`.
const prepareLong = `Prepare creates DIR/gomodcache, DIR/gocache (with Go's README) and DIR/.melcache,
owned by the user who will run melange (--owner, default: you). melange mounts DIR
only if it exists, so run this before melange build --cache-dir DIR.

It is idempotent, creates DIR but not its parents, and never touches other files in
DIR (melange and wolfi keep apk files and fetch caches there). With --from-host it
seeds the module cache from this host's 'go env GOMODCACHE' (hard links when the
files already belong to the owner and share a filesystem, copies otherwise).`

// prepareExample are the examples in the help of `melcache prepare`.
const prepareExample = `  melcache prepare                              # ./melange-cache
  sudo melcache prepare --dir /var/cache/mc --owner 1000:1000
  melcache prepare --dir ./mc --from-host         # reuse the modules this host has`

func newPrepareCmd(g *globals) *cobra.Command {
	var fl prepareFlags
	cmd := &cobra.Command{
		Use:     "prepare",
		Short:   "Create the cache directory melange mounts at /var/cache/melange",
		Long:    prepareLong,
		Example: prepareExample,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return runPrepare(cmd, g, &fl, args) },
	}
	fl.register(cmd, true)
	cmd.Flags().StringVar(&fl.owner, "owner", "", "UID:GID to own the caches (default: the invoking user)")
	cmd.Flags().BoolVar(&fl.fromHost, "from-host", false, "seed gomodcache/cache/download from this host's go env GOMODCACHE")
	cmd.Flags().BoolVar(&fl.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// prepareFlags are the flags of the command runPrepare runs.
type prepareFlags struct {
	cacheDirFlags
	owner    string
	fromHost bool
	asJSON   bool
}

// runPrepare runs the command with its flags and prints the result.
func runPrepare(cmd *cobra.Command, g *globals, f *prepareFlags, args []string) error {
	o := mount.PrepareOptions{Log: g.log}
	if cmd.Flags().Changed("owner") {
		ow, err := mount.ParseOwner(f.owner)
		if err != nil {
			return usageErrorf("--owner: %v", err)
		}
		o.Owner = &ow
	}
	l, err := f.layout()
	if err != nil {
		return err
	}
	if err := f.recoverRestore(cmd.Context(), g, l); err != nil {
		return err
	}
	if f.fromHost {
		dir, err := build.HostGoModCache(cmd.Context())
		if err != nil {
			return fmt.Errorf("--from-host: %w", err)
		}
		o.FromHost = dir
	}
	o.LockOptions = f.lockOptions(g, l)
	res, err := l.Prepare(cmd.Context(), o)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(g.stderr, "melcache: warning: %s\n", w)
	}
	if f.asJSON {
		return writeJSON(g.stdout, res)
	}
	if !res.Changed() {
		fmt.Fprintf(g.stdout, "%s is prepared (owner %s); nothing changed\n", l.Dir, res.Owner)
	} else {
		fmt.Fprintf(g.stdout, "prepared %s (owner %s): %d created, %d re-owned\n", l.Dir, res.Owner, len(res.Created), res.Chowned)
	}
	if s := res.Seeded; s != nil {
		fmt.Fprintf(g.stdout, "seeded modules from %s: %d linked, %d copied (%s), %d already there\n",
			s.From, s.Linked, s.Copied, units.FormatSize(s.Bytes), s.Skipped)
	}
	for _, e := range l.Env() {
		fmt.Fprintf(g.stdout, "  %s\n", e)
	}
	return nil
}
