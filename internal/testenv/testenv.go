// Package testenv holds test support shared by melcache's packages: external
// tools that tests need, a real registry on loopback, and real Go cache
// fixtures built once per test run.
//
// Tests that need a tool skip with the reason when it is missing, except under
// CI=true, where a missing tool fails the test: CI installs every tool, so a
// skip there would hide a broken install step.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
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

// pythonFallback is where Debian's python3 lives: a python3 earlier in PATH
// (pyenv's, say) may lack the modules Debian's python3-pip,
// python3-setuptools and python3-wheel install.
const pythonFallback = "/usr/bin/python3"

// RequirePython returns a python3 that can import every module of mods
// (e.g. "pip", "setuptools", "wheel"): the one in PATH, else Debian's. It
// skips the test when there is none (fails it under CI), naming the Debian
// packages that provide them.
func RequirePython(t testing.TB, mods ...string) string {
	t.Helper()
	imp := "import " + strings.Join(mods, ", ")
	var tried []string
	for _, name := range []string{"python3", pythonFallback} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if canImport(p, mods) {
			return p
		}
		tried = append(tried, p)
	}
	var pkgs []string
	for _, m := range mods {
		pkgs = append(pkgs, "python3-"+m)
	}
	msg := fmt.Sprintf("no python3 that can %q (tried %v; Debian packages %s; .ci/run installs them)", imp, tried, strings.Join(pkgs, " "))
	if InCI() {
		t.Fatalf("CI=true: %s", msg)
	}
	t.Skip(msg)
	return ""
}

// canImport reports whether python can import each of mods, one at a time:
// Debian's setuptools refuses to load after pip has loaded distutils.
func canImport(python string, mods []string) bool {
	for _, m := range mods {
		if exec.Command(python, "-c", "import "+m).Run() != nil {
			return false
		}
	}
	return true
}
