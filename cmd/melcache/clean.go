package main

import (
	"fmt"

	"github.com/melcache/melcache/mount"
	"github.com/spf13/cobra"
)

func init() { addCommand(newCleanCmd) }

// cleanLong is the help text of `melcache clean`.
const cleanLong = `Clean empties DIR/gomodcache and DIR/gocache, read-only module trees included.
The two directories stay, with their owner, so DIR is still prepared for melange.
Other files in DIR, and melcache's state, stay. With --recipe, DIR is emptied as
'go clean -modcache' would, if it looks like a module cache (has cache/download).

--cache names the caches to empty instead (default: gomodcache,gocache); only those
are touched. npm, pip, uv, composer and m2repository: the directory DIR/NAME is
emptied and stays. fetch: the files DIR/sha256:<hex> and DIR/sha512:<hex> are
removed, and nothing else in DIR.`

// cleanExample are the examples in the help of `melcache clean`.
const cleanExample = `  melcache clean --dir ./melange-cache
  melcache clean --cache npm,fetch           # only npm's cache and the fetched sources`

func newCleanCmd(g *globals) *cobra.Command {
	var (
		f      cacheDirFlags
		asJSON bool
		cf     cacheListFlag
	)
	cmd := &cobra.Command{
		Use:     "clean",
		Short:   "Empty melcache's caches in the cache directory, and touch nothing else",
		Long:    cleanLong,
		Example: cleanExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			caches, err := cf.caches()
			if err != nil {
				return err
			}
			l, err := f.layout()
			if err != nil {
				return err
			}
			if err := f.recoverRestore(cmd.Context(), g, l); err != nil {
				return err
			}
			res, err := l.Clean(cmd.Context(), mount.CleanOptions{Caches: caches, LockOptions: f.lockOptions(g, l)})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g.stdout, res)
			}
			if len(res.Emptied) == 0 {
				fmt.Fprintf(g.stdout, "%s holds no caches; nothing removed\n", l.Dir)
			}
			for _, p := range res.Emptied {
				fmt.Fprintf(g.stdout, "emptied %s\n", p)
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cf.register(cmd, "the caches to empty", "gomodcache,gocache")
	return cmd
}
