package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"melcache": func() { os.Exit(Main()) },
	})
}

// TestScripts runs the CLI scripts in testdata/script: each is a txtar file
// with the commands a user types and the output and exit status they expect.
//
// Extra conditions available to scripts (both are errors, so failures,
// under CI=true, where every tool is installed and tests run as root):
//
//	[missing:TOOL] skip 'why'   skip when TOOL is not in PATH
//	[notroot] skip 'why'        skip unless root
//	[noshared:REL] skip 'why'   skip when REL (e.g. corpus/melange) is not in
//	                            the shared data directory, $SHARED
//	                            (testenv.Shared)
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams(t, "testdata/script"))
}

func scriptParams(t *testing.T, dir string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("CI", os.Getenv("CI"))
			e.Setenv("REPO", testenv.RepoRoot())
			e.Setenv("SHARED", testenv.SharedDir())
			e.Setenv("XDG_CACHE_HOME", e.WorkDir+"/.xdgcache")
			k, v, _ := strings.Cut(testenv.GoConfigEnv(t), "=")
			e.Setenv(k, v)
			return nil
		},
		Condition: func(cond string) (bool, error) {
			// [missing:TOOL] is true when TOOL is not in PATH; use it as
			// "[missing:skopeo] skip". Under CI=true a missing tool is an
			// error, which fails the script instead of skipping it.
			if tool, ok := strings.CutPrefix(cond, "missing:"); ok {
				if _, err := exec.LookPath(tool); err != nil {
					if testenv.InCI() {
						return false, fmt.Errorf("CI=true: %s not found (Debian package %s)", tool, testenv.DebianPackage(tool))
					}
					return true, nil
				}
				return false, nil
			}
			// [notroot] is true when not running as root; an error under CI.
			if cond == "notroot" {
				if os.Geteuid() != 0 && testenv.InCI() {
					return false, fmt.Errorf("CI=true: script needs root")
				}
				return os.Geteuid() != 0, nil
			}
			// [noshared:REL] is true when the shared data directory lacks
			// REL; an error under CI, like testenv.Shared.
			if rel, ok := strings.CutPrefix(cond, "noshared:"); ok {
				if _, err := testenv.SharedPath(rel); err != nil {
					if testenv.InCI() {
						return false, fmt.Errorf("CI=true: %w", err)
					}
					return true, nil
				}
				return false, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	}
}
