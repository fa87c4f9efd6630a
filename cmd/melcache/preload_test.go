package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestPreloadScripts runs the preload command's scripts: its usage and the
// errors a user meets, none of which needs a network.
func TestPreloadScripts(t *testing.T) {
	testscript.Run(t, scriptParams(t, "testdata/preload"))
}
