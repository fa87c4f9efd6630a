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
'go clean -modcache' would, if it looks like a module cache (has cache/download).`

// cleanExample are the examples in the help of `melcache clean`.
const cleanExample = `  melcache clean --dir ./melange-cache`

func newCleanCmd(g *globals) *cobra.Command {
	var (
		f      cacheDirFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "clean",
		Short:   "Empty melcache's caches in the cache directory, and touch nothing else",
		Long:    cleanLong,
		Example: cleanExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := f.layout()
			if err != nil {
				return err
			}
			if err := f.recoverRestore(cmd.Context(), g, l); err != nil {
				return err
			}
			res, err := l.Clean(cmd.Context(), mount.CleanOptions{LockOptions: f.lockOptions(g, l)})
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
	return cmd
}
