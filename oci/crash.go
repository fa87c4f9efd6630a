package oci

import (
	"errors"
	"os"
	"strings"
)

// crashEnv names a test-only hook: when it lists a point ("pull-swap" or
// "pull-swap,push-layer"), the process exits with status 137, as if killed,
// the first time it reaches that point. Points, in order: pull-journal (stage
// journal written, nothing staged), pull-extract (10 files extracted),
// pull-staged (staging complete and synced), pull-swap (first cache renamed),
// pull-swapped (all renamed, journal still "swap"), pull-unswap (a swap
// failed: journal "unswap" written, nothing undone yet), pull-unswap-half
// (in the undo of a cache, its new tree moved back to staging and its old
// one not yet back: the cache is missing), pull-cleanup (journal
// "cleanup", old trees not yet removed), pull-record; push-layer (a data
// layer uploaded), push-manifest (all blobs uploaded, no manifest),
// push-record (manifest stored, local base not recorded). Kill tests drive the real binary
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

// failEnv names a test-only hook: when it lists a point, the step there
// fails with failErr instead of running, standing for a failure a test
// cannot cause for real after the checks that precede it. Points:
// swap-CACHE for each cache (swap-gomodcache, swap-gocache, swap-npm, ...:
// the swap's first rename of that cache, EBUSY or EACCES met after the
// preflight; swap-fetch: before the fetch cache's per-file swap).
const failEnv = "MELCACHE_TEST_FAIL"

// errInjected is the failure failEnv injects.
var errInjected = errors.New("injected failure (" + failEnv + ")")

func injectedFailure(name string) error {
	v := os.Getenv(failEnv)
	if v == "" {
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		if p == name {
			return errInjected
		}
	}
	return nil
}
