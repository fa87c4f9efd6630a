// Command hello-go is melcache's example package: a small Go program with
// two third-party dependencies, built by melange's go/build pipeline in
// melange.yaml next to it.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"golang.org/x/mod/semver"
)

// version is set at link time by melange.yaml
// (-ldflags "-X main.version=${{package.version}}").
var version = "0.0.0"

func main() {
	name := pflag.String("name", "world", "who to greet")
	pflag.Parse()
	v := semver.Canonical("v" + version)
	if v == "" {
		fmt.Fprintf(os.Stderr, "hello-go: version %q is not semantic\n", version)
		os.Exit(1)
	}
	fmt.Printf("hello, %s, from hello-go %s\n", *name, v)
}
