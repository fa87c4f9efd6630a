// Package greet builds the greeting of the hello test program. It lives in
// its own package, importing a third-party module, so that a build compiles
// more than one package of the main module.
package greet

import (
	"fmt"

	"golang.org/x/mod/semver"
)

// Greeting returns the line hello prints for name at version v.
func Greeting(name, v string) string {
	canon := semver.Canonical("v" + v)
	if canon == "" {
		canon = "invalid"
	}
	return fmt.Sprintf("hello, %s (version %s, major %s)", name, canon, semver.Major(canon))
}
