// Command realcache is the program testenv.RealCache builds into fresh Go
// caches: small, so the fixture builds in seconds, but real, with
// third-party modules (cobra, pflag) whose zips and extracted read-only
// trees land in the module cache next to the standard library's and its
// own build outputs in the build cache.
//
// The file is not named main.go on purpose: Go caches a main package's file
// list as an output of its own ("./main.go\n"), and the mount tests build
// a second program with a lone main.go into this cache. A shared output
// would make that build's action entry point at this fixture's (older)
// output file, which TestPruneRealCache's exact accounting does not model.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	var name string
	cmd := &cobra.Command{
		Use:   "realcache",
		Short: "greets",
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "hello,", name)
			return err
		},
	}
	cmd.Flags().AddFlagSet(pflag.NewFlagSet("extra", pflag.ContinueOnError))
	cmd.Flags().StringVar(&name, "name", "world", "who to greet")
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
