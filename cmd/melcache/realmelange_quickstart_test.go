package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// quickStartScript is the script that runs the README's Quick start.
const quickStartScript = "testdata/realmelange/quickstart.txtar"

// TestRealMelangeQuickStart runs the README's Quick start as a script
// against the real melange and a loopback registry (quickStartScript), after
// checking that the script's commands are the README's. The script's
// environment: REF (the registry repository), APKREPO (the offline apk
// repository), melange first in PATH, and src/ holding examples/hello-go
// with a file:// module proxy in src/goproxy.
func TestRealMelangeQuickStart(t *testing.T) {
	checkQuickStartScript(t)
	real := melangetest.RealMelange(t)
	example := filepath.Join(testenv.RepoRoot(), "examples", "hello-go")
	proxy := strings.TrimPrefix(melangetest.ModuleProxy(t, "hello-go-proxy", example), "file://")
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	p := scriptParams(t, filepath.Dir(quickStartScript))
	setup := p.Setup
	p.Setup = func(e *testscript.Env) error {
		if err := setup(e); err != nil {
			return err
		}
		e.Setenv("REF", reg.Host+"/acme/gocache")
		e.Setenv("APKREPO", real.Repo)
		e.Setenv("PATH", filepath.Dir(real.Melange)+string(os.PathListSeparator)+e.Getenv("PATH"))
		src := filepath.Join(e.WorkDir, "src")
		for _, f := range []string{"go.mod", "go.sum", "main.go"} {
			b, err := os.ReadFile(filepath.Join(example, f))
			if err != nil {
				return err
			}
			if err := os.MkdirAll(src, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
				return err
			}
		}
		testenv.CopyTree(t, proxy, filepath.Join(src, "goproxy"))
		return nil
	}
	testscript.Run(t, p)
}

// quickStartChanges are the changes the script may make to the README's
// commands: REF is the loopback registry, and melange's args (the README's
// `-- --arch x86_64`, and none for a bare `melange build`) are
// ../shared/melange/README.md's, appended to the command.
var quickStartChanges = strings.NewReplacer("ghcr.io/acme/gocache", "$REF", " -- --arch x86_64", "")

// checkQuickStartScript fails when the script's exec lines are not the
// README's Quick start commands, in order (the `go install` line skipped,
// quickStartChanges applied, melange's args appended).
func checkQuickStartScript(t *testing.T) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range quickStartCommands(t, string(readme)) {
		if strings.HasPrefix(c, "go install ") {
			continue
		}
		want = append(want, quickStartChanges.Replace(c))
	}
	script, err := os.ReadFile(quickStartScript)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(string(script), "\n") {
		if strings.HasPrefix(line, "-- ") {
			break
		}
		if c, ok := strings.CutPrefix(line, "exec "); ok {
			got = append(got, c)
		}
	}
	i := 0
	for _, c := range got {
		if i < len(want) && (c == want[i] || strings.HasPrefix(c, want[i]+" ")) {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("%s does not run the README's Quick start: command %q (and those after it) missing or out of order; the script's commands:\n%s",
			quickStartScript, want[i], strings.Join(got, "\n"))
	}
}

// spaces collapses runs of blanks in a shell line.
var spaces = regexp.MustCompile(`[ \t]+`)

// quickStartCommands returns the commands of the README's Quick start sh
// block: continuation lines joined, comments and blank lines dropped.
func quickStartCommands(t *testing.T, readme string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "## Quick start")
	if !ok {
		t.Fatal("README.md has no Quick start section")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md's Quick start has no sh block")
	}
	block = strings.ReplaceAll(block, "\\\n", " ")
	var cmds []string
	for _, line := range strings.Split(block, "\n") {
		if i := strings.Index(line, "#"); i >= 0 && (i == 0 || line[i-1] == ' ') {
			line = line[:i]
		}
		line = strings.TrimSpace(spaces.ReplaceAllString(line, " "))
		if line != "" {
			cmds = append(cmds, line)
		}
	}
	if len(cmds) < 2 {
		t.Fatalf("README.md's Quick start holds %d commands", len(cmds))
	}
	return cmds
}
