package oci

import (
	"os"
	"strings"
)

// crashEnv names a test-only hook: when it lists a point ("pull-swap" or
// "pull-swap,push-layer"), the process exits with status 137, as if killed,
// the first time it reaches that point. Kill tests drive the real binary
// with it to check that every interruption leaves the cache old or new.
const crashEnv = "MELCACHE_TEST_CRASH"

// crashExitCode mimics a SIGKILL (128+9).
const crashExitCode = 137

func crashPoint(name string) {
	v := os.Getenv(crashEnv)
	if v == "" {
		return
	}
	for _, p := range strings.Split(v, ",") {
		if p == name {
			os.Exit(crashExitCode)
		}
	}
}
