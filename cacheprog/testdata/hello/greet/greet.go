package greet

import "strings"

func Hello(n string) string { return "hello, " + strings.ToUpper(n) }
