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
files already belong to the owner and share a filesystem, copies otherwise).

--cache chooses the caches to create (default: gomodcache,gocache), each a directory
in DIR that melange points its tool at, owned like the Go caches:
  npm           DIR/npm            (npm_config_cache, set by melange)
  pip           DIR/pip            (PIP_CACHE_DIR, set by melange)
  uv            DIR/uv             (UV_CACHE_DIR, set by melange)
  composer      DIR/composer       (COMPOSER_CACHE_DIR, set by melange)
  m2repository  DIR/m2repository   (linked from ~/.m2/repository by the maven pipelines)
  fetch         nothing to create: its files are DIR/sha256:<hex> and DIR/sha512:<hex>
docs/caches.md describes each.`

// prepareExample are the examples in the help of `melcache prepare`.
const prepareExample = `  melcache prepare                              # ./melange-cache
  sudo melcache prepare --dir /var/cache/mc --owner 1000:1000
  melcache prepare --dir ./mc --from-host         # reuse the modules this host has
  melcache prepare --cache npm,pip                # only DIR/npm and DIR/pip`

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
	fl.caches.register(cmd, "the caches to create", "gomodcache,gocache")
	return cmd
}

// prepareFlags are the flags of the command runPrepare runs.
type prepareFlags struct {
	cacheDirFlags
	owner    string
	fromHost bool
	asJSON   bool
	caches   cacheListFlag
}

// runPrepare runs the command with its flags and prints the result.
func runPrepare(cmd *cobra.Command, g *globals, f *prepareFlags, args []string) error {
	o := mount.PrepareOptions{Log: g.log}
	var err error
	if o.Caches, err = f.caches.caches(); err != nil {
		return err
	}
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
	printPreparedEnv(g, l, o.Caches)
	return nil
}

// printPreparedEnv prints where the build finds each prepared cache.
func printPreparedEnv(g *globals, l mount.Layout, caches []mount.Cache) {
	if caches == nil {
		caches = l.Caches()
	}
	for _, c := range caches {
		p, _ := mount.ProfileOf(c)
		switch {
		case l.HasCache(c) && p.Env != "":
			fmt.Fprintf(g.stdout, "  %s=%s\n", p.Env, l.GuestPath(c))
		case p.Env != "":
			fmt.Fprintf(g.stdout, "  %s=%s (%s)\n", p.Env, l.GuestPath(c), p.SetBy)
		default:
			fmt.Fprintf(g.stdout, "  %s: %s (%s)\n", c, l.GuestPath(c), p.SetBy)
		}
	}
}
