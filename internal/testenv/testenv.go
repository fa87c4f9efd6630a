// Package testenv holds test support shared by melcache's packages: external
// tools that tests need, a real registry on loopback, and real Go cache
// fixtures built once per test run.
//
// Tests that need a tool skip with the reason when it is missing, except under
// CI=true, where a missing tool fails the test: CI installs every tool, so a
// skip there would hide a broken install step.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where missing tools
// are failures, not skips.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireTool returns the path of an external tool, skipping the test when it
// is missing (failing it under CI). The Debian package that provides it is
// named so the message says how to get it.
func RequireTool(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	msg := tool + " not found in PATH (Debian package " + DebianPackage(tool) + "; .ci/run installs it)"
	if InCI() {
		t.Fatalf("CI=true: %s", msg)
	}
	t.Skip(msg)
	return ""
}

// DebianPackage names the Debian package that provides tool.
func DebianPackage(tool string) string {
	switch tool {
	case "bwrap":
		return "bubblewrap"
	case "setpriv", "unshare":
		return "util-linux"
	}
	return tool
}

// RequireRoot skips (fails under CI) when the test is not running as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatalf("CI=true: needs root: %s", why)
	}
	t.Skip("needs root: " + why)
}

// SkipShort skips the test under -short, saying what kind of test it is
// ("end-to-end", "real Go build", "registry-heavy"): -short keeps the
// suite's fast tests, and `go test ./...` (and CI) still runs these.
func SkipShort(t testing.TB, kind string) {
	t.Helper()
	if testing.Short() {
		t.Skip(kind + ": skipped with -short")
	}
}
