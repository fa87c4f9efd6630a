// Package seed compiles the standard packages testdata/hello uses, so a
// shared fixture holds them and the test compiles only hello's own.
package seed

import (
	"fmt"
	"strings"
)

func Seed() string { return fmt.Sprint(strings.ToUpper("seed")) }
