package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
)

const doctorBuildConfig = `package:
  name: hello
  version: 1.0.0
pipeline:
  - runs: echo built
`

// doctorBuildYAMLWins sets GOCACHE in its own environment, which melange
// applies over an env-file.
const doctorBuildYAMLWins = `package:
  name: hello
  version: 1.0.0
environment:
  environment:
    GOCACHE: /tmp/gocache
pipeline:
  - runs: echo built
`

// TestDoctorAfterBuild: doctor --config evaluates the config as the last
// `melcache build` of it ran it (the build's env-file, the YAML winning
// over it, or the --rewrite copy); without a build it keeps the advice for
// step-by-step users.
func TestDoctorAfterBuild(t *testing.T) {
	testenv.RequireTool(t, "bwrap")
	standin := melangetest.Binary(t)
	work := testenv.TempDir(t)
	t.Chdir(work)
	os.WriteFile("pkg.yaml", []byte(doctorBuildConfig), 0o644)
	os.WriteFile("wins.yaml", []byte(doctorBuildYAMLWins), 0o644)
	doctor := func(config string) (string, int) {
		out, _, code := cliCode(t, nil, "doctor", "--dir", "c", "--config", config)
		return out, code
	}
	build := func(args ...string) {
		args = append([]string{"build", "--dir", "c", "--melange", standin}, args...)
		cli(t, nil, append(args, "--", "--workspace-dir", filepath.Join(work, "ws"))...)
	}
	match := func(out, re string) {
		t.Helper()
		if !regexp.MustCompile("(?m)" + re).MatchString(out) {
			t.Errorf("doctor output does not match %q:\n%s", re, out)
		}
	}

	cli(t, nil, "prepare", "--dir", "c")
	out, code := doctor("pkg.yaml")
	if code != 1 {
		t.Errorf("doctor before any build: exit %d, want 1", code)
	}
	match(out, `^fail  config +GOCACHE=/home/build/.cache/go-build \(from default\): .*; fix: melcache inject -w pkg.yaml`)

	build("pkg.yaml")
	out, _ = doctor("pkg.yaml")
	match(out, `^pass  config +evaluated as melcache build ran it at .*: its env-file GOMODCACHE=/var/cache/melange/gomodcache GOCACHE=/var/cache/melange/gocache`)
	match(out, `^pass  config +GOCACHE=/var/cache/melange/gocache \(from env-file\)$`)
	match(out, `^pass  config +GOMODCACHE=/var/cache/melange/gomodcache \(from env-file\)$`)
	if strings.Contains(out, "fail  config") {
		t.Errorf("doctor after build fails the config:\n%s", out)
	}
	// The record is for pkg.yaml: another config keeps today's advice.
	out, _ = doctor("wins.yaml")
	match(out, `^fail  config +GOCACHE=/tmp/gocache \(from wins.yaml:6:5\): .*; fix: melcache inject -w wins.yaml`)

	// The YAML wins over the build's env-file, as in melange.
	build("wins.yaml")
	out, code = doctor("wins.yaml")
	if code != 1 {
		t.Errorf("doctor after a build whose YAML wins: exit %d, want 1", code)
	}
	match(out, `^fail  config +GOCACHE=/tmp/gocache \(from wins.yaml:6:5\): .*; fix: the YAML's environment wins over melcache build's env-file: melcache build --rewrite --force wins.yaml`)

	// --rewrite --force: the copy melange got overrides it.
	build("wins.yaml", "--rewrite", "--force")
	out, _ = doctor("wins.yaml")
	match(out, `^pass  config +evaluated as melcache build ran it at .*: a rewritten copy \(--rewrite\)`)
	match(out, `^pass  config +GOCACHE=/var/cache/melange/gocache \(from melcache build's rewritten copy of wins.yaml\)$`)
	if strings.Contains(out, "fail  config") {
		t.Errorf("doctor after build --rewrite --force fails the config:\n%s", out)
	}
}
