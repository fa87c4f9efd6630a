//go:build !linux

package main

// isTerminalFd reports false off Linux: melcache targets Linux builders
// (melange); elsewhere progress stays quiet rather than guess.
func isTerminalFd(uintptr) bool { return false }
