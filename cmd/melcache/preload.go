package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/mount"
)

func init() { addCommand(newPreloadCmd) }

// preloadLong is the help text of `melcache preload`.
const preloadLong = `preload downloads into DIR/gomodcache every module a build needs, so that the
build that follows can run with no network at all (melange's bubblewrap runner
with the network unshared, or GOPROXY=off).

With --source, every go.mod under the directory is preloaded (or the modules
its go.work uses); the search skips vendor/ and testdata/, the cache dir
itself and any dir holding melcache's .melcache state (./melange-cache), Go
module caches and extracted module@version trees: their go.mod files belong
to other modules. With a melange config, its git-checkout step (repository,
tag with ${{package.version}} substituted, expected-commit) is cloned into a
temporary directory and, in the modroot of each go/build step, only the
modules its packages (and tags) import are downloaded (go list -deps): a
smaller cache to snapshot and restore. A config whose runs: steps call go or
make, or whose packages cannot be read, gets every module of go.mod instead.
A config without git-checkout uses its own directory, as melange does.
A module with a vendor/ tree needs nothing downloaded.

GOPROXY, GOPRIVATE, GONOPROXY, GONOSUMDB, GOSUMDB and GOFLAGS are honoured
from the environment. When GOTOOLCHAIN=local applies (environment or the
config's environment) or the config installs a versioned Go package, a go.mod
whose go line needs a newer Go is refused up front, naming the file and line.
The source's go.mod and go.sum are never modified.`

// preloadExample are the examples in the help of `melcache preload`.
const preloadExample = `  melcache preload pkg.yaml                       # into ./melange-cache/gomodcache
  melcache preload --dir /var/cache/melcache --source ./src
  GOTOOLCHAIN=local melcache preload --json pkg.yaml`

func newPreloadCmd(g *globals) *cobra.Command {
	var fl preloadFlags
	cmd := &cobra.Command{
		Use:     "preload [--dir DIR] (--source DIR | CONFIG.yaml)",
		Short:   "Download the Go modules a build needs into the cache directory",
		Long:    preloadLong,
		Example: preloadExample,
		Args:    cobra.MaximumNArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runPreload(cmd, g, &fl, args) },
	}
	cmd.Flags().StringVar(&fl.dir, "dir", mount.DefaultDir, "cache directory (melange's --cache-dir)")
	cmd.Flags().StringVar(&fl.source, "source", "", "preload the modules of this source tree instead of a config")
	cmd.Flags().BoolVar(&fl.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// preloadFlags are the flags of the command runPreload runs.
type preloadFlags struct {
	dir    string
	source string
	asJSON bool
}

// runPreload runs the command with its flags and prints the result.
func runPreload(cmd *cobra.Command, g *globals, f *preloadFlags, args []string) error {
	var config string
	if len(args) == 1 {
		config = args[0]
	}
	switch {
	case config == "" && f.source == "":
		return usageErrorf("give a melange config or --source DIR")
	case config != "" && f.source != "":
		return usageErrorf("give either a melange config (%s) or --source (%s), not both", config, f.source)
	}
	// Bad input fails before recovery or Preload create DIR's state.
	if err := mount.CheckPreloadInput(mount.PreloadOptions{Source: f.source, Config: config}); err != nil {
		return err
	}
	l, err := mount.New(f.dir, mount.Options{})
	if err != nil {
		return err
	}
	// Preload adds to the module cache: finish an interrupted restore first,
	// as every command that changes the caches does.
	lo := lockWaitOptions(g, l.Dir, false)
	if err := recoverFirst(cmd.Context(), g, l, lo); err != nil {
		return err
	}
	res, err := l.Preload(cmd.Context(), mount.PreloadOptions{Source: f.source, Config: config, Log: g.log, LockOptions: lo})
	if err != nil {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if co := res.Checkout; co != nil {
		fmt.Fprintf(g.stdout, "checked out %s %s at %s\n", co.Repository, co.Ref, co.Commit)
	}
	for _, m := range res.Modules {
		if m.Vendored {
			fmt.Fprintf(g.stdout, "%s (%s): vendor/ present, nothing to download\n", m.Path, m.Dir)
			continue
		}
		fmt.Fprintf(g.stdout, "%s (%s): %d modules, %d downloaded\n", m.Path, m.Dir, m.Modules, m.New)
	}
	fmt.Fprintf(g.stdout, "module cache: %s\n", res.ModCache)
	return nil
}
