package main

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
	"gopkg.in/yaml.v3"
)

func examplesDir() string { return filepath.Join(testenv.RepoRoot(), "examples") }

// TestExamplesParse checks that every YAML file under examples/ parses, that
// melange configs have a package and a go/build step plus a runs: step, and
// that the workflow has jobs.
func TestExamplesParse(t *testing.T) {
	var n int
	err := filepath.WalkDir(examplesDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (!strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml")) {
			return nil
		}
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		switch {
		case doc["package"] != nil:
			checkMelangeExample(t, p, b)
			checkInjects(t, p, b)
		case doc["jobs"] != nil:
		default:
			t.Errorf("%s: neither a melange config (package:) nor a workflow (jobs:)", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Errorf("found %d example YAML files, want the melange config and the workflow", n)
	}
}

func checkMelangeExample(t *testing.T, path string, b []byte) {
	t.Helper()
	var cfg struct {
		Package struct {
			Name, Version string
		}
		Pipeline []struct {
			Uses string
			Runs string
		}
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	var goBuild, runs bool
	for _, s := range cfg.Pipeline {
		goBuild = goBuild || s.Uses == "go/build"
		runs = runs || s.Runs != ""
	}
	if cfg.Package.Name == "" || cfg.Package.Version == "" || !goBuild || !runs {
		t.Errorf("%s: want package name and version, a go/build step and a runs: step; got %+v", path, cfg)
	}
}

// checkInjects runs envinject on a melange example: the rewrite succeeds,
// sets both caches, has no lint findings, and a second run changes nothing.
func checkInjects(t *testing.T, path string, b []byte) {
	t.Helper()
	res, err := envinject.Inject(b, envinject.Options{})
	if err != nil {
		t.Errorf("%s: inject: %v", path, err)
		return
	}
	if !res.Changed || len(res.Set) != 2 || len(res.Kept) != 0 || len(res.Findings) != 0 {
		t.Errorf("%s: inject changed=%v set=%v kept=%v findings=%v; want GOMODCACHE and GOCACHE set, nothing kept or found",
			path, res.Changed, res.Set, res.Kept, res.Findings)
	}
	again, err := envinject.Inject(res.Out, envinject.Options{})
	if err != nil || again.Changed {
		t.Errorf("%s: a second inject changed=%v err=%v, want no change", path, again.Changed, err)
	}
}

// pendingCommands are melcache commands the examples call that other issues
// add. While one is not registered it is accepted unchecked; once it is, its
// flags are checked like every other command's.
var pendingCommands = map[string]string{
	"prepare": "issue 2",
	"status":  "issue 2",
	"inject":  "issue 3",
	"pull":    "issue 4",
	"push":    "issue 4",
}

// TestExamplesCallExistingCommands checks every melcache command line in the
// workflow's run: scripts and in the Makefile fragment (as `make -n` prints
// it) against the CLI: the command exists (or is pending, above) and accepts
// the flags given.
func TestExamplesCallExistingCommands(t *testing.T) {
	var lines []string
	// The workflow's run: scripts.
	b, err := os.ReadFile(filepath.Join(examplesDir(), "github-actions.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Run string
			}
		}
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	for _, j := range wf.Jobs {
		for _, s := range j.Steps {
			lines = append(lines, shellCommands(s.Run)...)
		}
	}
	// The Makefile's recipes, expanded by make itself.
	if _, err := exec.LookPath("make"); err == nil {
		cmd := exec.Command("make", "-n", "-f", filepath.Join(examplesDir(), "Makefile"),
			"MELANGE=melange", "MELANGE_OPTS=--arch x86_64", "MELCACHE_REF=ghcr.io/org/melcache-cache:wolfi-x86_64",
			"melcache-prepare", "melcache-pull", "melcache-push", "melcache-status",
			"melcache-package/examples/hello-go/melange")
		cmd.Dir = testenv.RepoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n of examples/Makefile: %v\n%s", err, out)
		}
		made := shellCommands(string(out))
		if !containsPrefix(made, "melange build examples/hello-go/melange.yaml --arch x86_64 --env-file ") {
			t.Errorf("the Makefile's package rule does not run melange build with --env-file:\n%s", out)
		}
		lines = append(lines, made...)
	} else if testenv.InCI() {
		t.Fatal("CI=true: make not found")
	}

	var checked, pending int
	for _, l := range lines {
		words := shellWords(l)
		if len(words) == 0 || words[0] != "melcache" {
			continue
		}
		args := words[1:]
		if i := indexOf(args, "--"); i >= 0 {
			// melange's own arguments, which melcache build reads too.
			if _, err := build.ParseMelangeArgs(args[i+1:]); err != nil {
				t.Errorf("%q: melange arguments: %v", l, err)
			}
			args = args[:i]
		}
		g := &globals{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
		root := newRoot(g)
		c, rest, err := root.Find(args)
		if err != nil || c == root {
			if len(args) > 0 && pendingCommands[args[0]] != "" {
				pending++
				continue
			}
			t.Errorf("%q: no such melcache command", l)
			continue
		}
		if err := c.ParseFlags(rest); err != nil {
			t.Errorf("%q: %v", l, err)
		}
		checked++
	}
	if checked+pending < 8 {
		t.Errorf("found %d melcache command lines in the examples, want every one of the workflow's and Makefile's", checked+pending)
	}
	t.Logf("%d command lines checked against the CLI, %d for commands not registered yet", checked, pending)
}

// shellCommands splits a script into command lines, joining
// backslash-continued lines and dropping comments.
func shellCommands(script string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(script, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

// shellWords splits a command line into words, honouring single and double
// quotes (variables stay as written) and stopping at a redirection or pipe.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case (r == '>' || r == '|' || r == ';' || r == '&') && !in:
			return words
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func containsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// TestExampleHelloGoOffline preloads the example package's modules from its
// melange.yaml, then builds it with the melange stand-in under bwrap with no
// network, GOCACHE in the cache dir, and runs its smoke test.
func TestExampleHelloGoOffline(t *testing.T) {
	t.Parallel() // slow and self-contained (own dirs, registry, processes): overlaps with the others
	testenv.SkipShort(t, "end-to-end (stand-in melange, bwrap, real Go build)")
	testenv.RequireTool(t, "bwrap")
	work := testenv.TempDir(t)
	cfg := filepath.Join(examplesDir(), "hello-go", "melange.yaml")
	l, err := mount.New(filepath.Join(work, "cache"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Modules come from the host's module cache first, then the configured
	// proxy (testenv.GoEnv), into the cache dir's gomodcache.
	env := testenv.GoEnv{ModCache: filepath.Join(work, "unused"), Cache: filepath.Join(work, "host-gocache")}.Environ()
	res, err := l.Preload(context.Background(), mount.PreloadOptions{Config: cfg, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Modules) != 1 || res.Modules[0].Modules < 2 {
		t.Fatalf("preload of %s: %+v, want the hello-go module with its two dependencies", cfg, res.Modules)
	}
	envFile := filepath.Join(work, "melcache.env")
	if err := os.WriteFile(envFile, []byte("GOMODCACHE=/var/cache/melange/gomodcache\nGOCACHE=/var/cache/melange/gocache\nGOPROXY=off\nGOTOOLCHAIN=local\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(melangetest.Binary(t), "build", cfg, "--cache-dir", l.Dir, "--env-file", envFile,
		"--workspace-dir", filepath.Join(work, "ws"), "--runner", "bubblewrap")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("stand-in build of %s: %v\n%s", cfg, err, out.String())
	}
	if want := "INFO hello, melange, from hello-go v0.1.0"; !strings.Contains(out.String(), want) {
		t.Errorf("smoke test output lacks %q:\n%s", want, out.String())
	}
	if _, err := os.Stat(filepath.Join(l.CacheDir(mount.GoCache), "README")); err != nil {
		t.Errorf("the build did not write GOCACHE into the cache dir: %v", err)
	}
}
