// Command prunex is a tiny real program with a real third-party dependency,
// built by the mount tests into caches that hold other programs' entries.
package main

import (
	"fmt"

	"github.com/spf13/pflag"
)

func main() {
	name := pflag.String("name", "world", "who to greet")
	pflag.Parse()
	fmt.Println("hello,", *name)
}
