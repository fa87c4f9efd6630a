package build

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"
)

// TestExecRunnerExitStatus: melange's status is the build's; a melange
// killed by signal N gives 128+N, as a shell reports it, and says so.
func TestExecRunnerExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -TERM $$", signalExitBase + int(syscall.SIGTERM)},
	} {
		var out, errOut bytes.Buffer
		code, err := ExecRunner{Stdout: &out, Stderr: &errOut}.Run(context.Background(), []string{"sh", "-c", "echo hi; " + tc.script})
		if err != nil || code != tc.want {
			t.Errorf("%q: code %d, err %v; want %d", tc.script, code, err, tc.want)
		}
		if out.String() != "hi\n" {
			t.Errorf("%q: stdout %q, want the command's", tc.script, out.String())
		}
		if signalled := strings.Contains(errOut.String(), "killed by signal"); signalled != (tc.want > signalExitBase) {
			t.Errorf("%q: stderr %q", tc.script, errOut.String())
		}
	}
	if _, err := (ExecRunner{}).Run(context.Background(), []string{"/nonexistent/melange"}); err == nil {
		t.Errorf("a missing binary ran")
	}
}
