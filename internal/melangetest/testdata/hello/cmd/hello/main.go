// Command hello is the test program that melcache's melange stand-in builds:
// a main package, an internal package and two third-party modules.
package main

import (
	"fmt"
	"os"

	"example.com/hello/internal/greet"
	"github.com/spf13/cobra"
)

// version is set with -ldflags "-X main.version=...".
var version = "0.0.0"

func main() {
	cmd := &cobra.Command{
		Use:  "hello [NAME]",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "melange"
			if len(args) == 1 {
				name = args[0]
			}
			fmt.Fprintln(cmd.OutOrStdout(), greet.Greeting(name, version))
			return nil
		},
	}
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
