package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestOpsScripts runs the scripts of the operations commands (doctor, gc,
// partial snapshots) in testdata/ops.
func TestOpsScripts(t *testing.T) {
	testscript.Run(t, scriptParams(t, "testdata/ops"))
}
