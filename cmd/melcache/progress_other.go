//go:build !linux

package main

import "io"

// isTerminal reports false off Linux: melcache targets Linux builders
// (melange); elsewhere progress stays quiet rather than guess.
func isTerminal(io.Writer) bool { return false }
