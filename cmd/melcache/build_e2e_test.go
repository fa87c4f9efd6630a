package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/oci"
)

// e2eConfig checks out the stand-in test module (example.com/hello: a main
// package, an internal package, cobra and x/mod) from a local git
// repository, builds it with go/build and runs the result in a runs: step.
const e2eConfig = `package:
  name: hello
  version: 1.2.3
  epoch: 0
environment:
  contents:
    packages:
      - go-1.26
      - busybox
pipeline:
  - uses: git-checkout
    with:
      repository: REPO
      tag: v${{package.version}}
      expected-commit: COMMIT
      destination: src
  - uses: go/build
    with:
      modroot: src
      packages: ./cmd/hello
      output: hello
      ldflags: -X main.version=${{package.version}}
  - name: smoke test
    runs: |
      ${{targets.contextdir}}/usr/bin/hello
`

// e2eHello is what the built program prints in the smoke test.
const e2eHello = "hello, melange (version v1.2.3, major v1)"

// eventBound bounds waits for something the test itself caused (a step
// starting, a signalled process exiting). Those take milliseconds; the bound
// only keeps a broken wrapper from hanging the test.
const eventBound = 60 * time.Second

// melcacheBinary is the melcache CLI in a directory every user can read
// (tests run it as another user): testenv.MelcacheBinary, built once per
// source state and Go version and shared like the stand-in.
func melcacheBinary(t *testing.T) string {
	t.Helper()
	return testenv.MelcacheBinary(t)
}

// e2e is one test's world: a work dir owned by the user melcache runs as,
// the melcache binary, the stand-in and a base environment.
type e2e struct {
	t        *testing.T
	work     string
	uid      int // -1: run as the test's own user
	melcache string
	melange  string
	env      []string
}

func newE2E(t *testing.T, uid int) *e2e {
	t.Helper()
	testenv.SkipShort(t, "end-to-end (melcache build, stand-in, bwrap, real Go build)")
	testenv.RequireTool(t, "bwrap")
	e := &e2e{t: t, work: testenv.TempDir(t), uid: uid, melcache: melcacheBinary(t), melange: melangetest.Binary(t)}
	if uid >= 0 {
		testenv.RequireTool(t, "setpriv")
		testenv.RequireRoot(t, "runs melcache as another user through setpriv")
		// Let the unprivileged user reach its work dir.
		for d := e.work; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	home := filepath.Join(e.work, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	// Only what the commands need: no GOPROXY, GOFLAGS or caches of the
	// host leak in; XDG_CACHE_HOME keeps the embedded store in the test.
	e.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"GOTOOLCHAIN=local", "GOSUMDB=off", "GOPROXY=off", "GOFLAGS=", "CI=" + os.Getenv("CI"), testenv.GoConfigEnv(t)}
	return e
}

// chown gives the work tree to the user melcache runs as.
func (e *e2e) chown() {
	if e.uid < 0 {
		return
	}
	err := filepath.WalkDir(e.work, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, e.uid, e.uid)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// run runs melcache in the work dir with extra environment and returns its
// stdout, stderr and exit status.
func (e *e2e) run(extraEnv []string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := e.command(extraEnv, args...)
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err := cmd.Run()
	return o.String(), s.String(), exitStatus(e.t, err)
}

func (e *e2e) command(extraEnv []string, args ...string) *exec.Cmd {
	argv := append([]string{e.melcache}, args...)
	if e.uid >= 0 {
		id := fmt.Sprint(e.uid)
		argv = append([]string{"setpriv", "--reuid", id, "--regid", id, "--clear-groups", "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = e.work
	cmd.Env = append(append([]string(nil), e.env...), extraEnv...)
	return cmd
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodeReport(t *testing.T, stdout string) buildReport {
	t.Helper()
	var r buildReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("melcache build --json printed no report: %v\n%s", err, stdout)
	}
	return r
}

// TestBuildEndToEnd is issue 5's end-to-end flow, as root and then as an
// unprivileged user: a cold `melcache build --preload` of a real module with
// third-party dependencies (served by a file:// proxy; the config's
// git-checkout step names a local repository, which preload clones) through
// the melange stand-in, pushing to a real registry; the cache is wiped; a `melcache
// build --pull` on a fresh dir with no module proxy at all must compile
// nothing. Compile actions are counted in the guest's `go build -x` output
// (GOFLAGS=-x through the env-file).
func TestBuildEndToEnd(t *testing.T) {
	t.Parallel() // slow and self-contained (own dirs, registry, processes): overlaps with the others
	t.Run("root", func(t *testing.T) {
		testenv.RequireRoot(t, "the root flow runs melange as root, like a docker or root melange")
		buildFlow(t, newE2E(t, -1))
	})
	t.Run("nonroot", func(t *testing.T) {
		uid := 1000 // root runs melcache as uid 1000 through setpriv
		if os.Geteuid() != 0 {
			uid = -1 // already unprivileged
		}
		buildFlow(t, newE2E(t, uid))
	})
}

func buildFlow(t *testing.T, e *e2e) {
	proxy := melangetest.FileProxy(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	repo := melangetest.CopyModule(t, filepath.Join(e.work, "repo"))
	gitEnv := append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	melangetest.Run(t, repo, gitEnv, "git", "init", "--quiet")
	melangetest.Run(t, repo, gitEnv, "git", "add", "-A")
	melangetest.Run(t, repo, gitEnv, "git", "commit", "--quiet", "-m", "v1.2.3")
	melangetest.Run(t, repo, gitEnv, "git", "tag", "v1.2.3")
	commit := strings.TrimSpace(string(melangetest.Run(t, repo, gitEnv, "git", "rev-parse", "HEAD")))
	cfg := strings.NewReplacer("REPO", repo, "COMMIT", commit).Replace(e2eConfig)
	writeTestFile(t, filepath.Join(e.work, "src", "melange.yaml"), cfg)
	e.chown()
	arch := oci.HostArch()
	ref := reg.Host + "/e2e/hello"
	common := []string{"--melange", e.melange, "--key", "hello-{arch}", "--offline", "--set", "GOFLAGS=-x", "--json"}

	// Cold: preload the modules from the file:// proxy (the guest has no
	// network), build, push.
	args := append([]string{"build", "src/melange.yaml", "--dir", "cold", "--preload", "--push", ref}, common...)
	args = append(args, "--", "--arch", arch, "--workspace-dir", "ws-cold")
	stdout, stderr, code := e.run([]string{"GOPROXY=" + proxy}, args...)
	if code != 0 {
		t.Fatalf("cold melcache build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	cold := decodeReport(t, stdout)
	coldCompiles := testenv.CountCompiles([]byte(stderr))
	if !strings.Contains(stderr, e2eHello) {
		t.Errorf("cold build: the smoke test did not print %q:\n%s", e2eHello, stderr)
	}
	if coldCompiles < 10 || cold.Misses == nil || *cold.Misses == 0 {
		t.Errorf("cold build: %d compile actions, misses %v; want a full build (≥ 10 compiles, misses > 0)", coldCompiles, cold.Misses)
	}
	// The report's compile actions are the packages the guest compiled.
	if c := cold.CompileActions; c == nil || c.Run != coldCompiles || c.Reused != 0 || !cold.CacheWasEmpty {
		t.Errorf("cold build: compile actions %+v, cache was empty %v; want %d run (go build -x), 0 reused, an empty cache", c, cold.CacheWasEmpty, coldCompiles)
	}
	// ./cmd/hello imports cobra (with pflag) and x/mod; mousetrap, in the
	// build list too, is imported on windows only, so preload skips it.
	if cold.Preloaded == nil {
		t.Errorf("cold build: no preloaded count in the report, want the 3 modules ./cmd/hello imports")
	} else if *cold.Preloaded != 3 {
		t.Errorf("cold build preloaded %d modules, want the 3 ./cmd/hello imports", *cold.Preloaded)
	}
	if cold.Push == nil || cold.Push.Digest == "" || cold.Push.Tag != "hello-"+arch {
		t.Fatalf("cold build pushed %+v, want a snapshot tagged hello-%s", cold.Push, arch)
	}
	if n := len(reg.Requests(t, "PUT", "/v2/e2e/hello/manifests/")); n != 1 {
		t.Errorf("registry saw %d manifest PUTs, want 1", n)
	}
	t.Logf("cold: %d compile actions, %d misses, %s added, melange %.1fs", coldCompiles, *cold.Misses, units.FormatSize(cold.BytesAdded), cold.BuildSeconds)

	// Wipe every cache this machine has.
	testenv.RemoveAll(t, filepath.Join(e.work, "cold"))
	testenv.RemoveAll(t, filepath.Join(e.work, "ws-cold"))

	// Warm: a fresh dir, no module proxy at all (GOPROXY=off for melcache
	// and, through --offline, in the guest).
	args = append([]string{"build", "src/melange.yaml", "--dir", "warm", "--pull", ref}, common...)
	args = append(args, "--", "--arch", arch, "--workspace-dir", "ws-warm")
	stdout, stderr, code = e.run(nil, args...)
	if code != 0 {
		t.Fatalf("warm melcache build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	warm := decodeReport(t, stdout)
	if !strings.Contains(stderr, e2eHello) {
		t.Errorf("warm build: the smoke test did not print %q:\n%s", e2eHello, stderr)
	}
	if warm.Pull == nil || warm.Pull.Digest != cold.Push.Digest {
		t.Errorf("warm build restored %+v, want %s", warm.Pull, cold.Push.Digest)
	}
	if n := testenv.CountCompiles([]byte(stderr)); n != 0 {
		t.Errorf("warm build ran %d compile actions, want none:\n%s", n, stderr)
	}
	// Module-index entries are not snapshotted (docs/format.md, "Excluded
	// entries"): Go rebuilds them, and they are the only misses.
	if warm.Hits == nil || *warm.Hits == 0 || warm.ModuleIndex == nil || *warm.Misses != warm.ModuleIndex.Run {
		t.Errorf("warm build: hits %v, misses %v, module index %+v; want hits, and no misses but module-index entries", warm.Hits, warm.Misses, warm.ModuleIndex)
	}
	if c := warm.CompileActions; c == nil || c.Run != 0 || c.Reused == 0 || warm.CacheWasEmpty || warm.ModuleIndex == nil {
		t.Errorf("warm build: compile actions %+v, module index %+v, cache was empty %v; want 0 run, some reused, a restored cache", c, warm.ModuleIndex, warm.CacheWasEmpty)
	}
	if warm.ModulesDownloaded != 0 {
		t.Errorf("warm build downloaded %d modules, want 0", warm.ModulesDownloaded)
	}
	if e.uid >= 0 {
		// The guest ran as uid 1000 mapped to the host user: the caches
		// stay that user's.
		fi, err := os.Stat(filepath.Join(e.work, "warm", "gocache", "README"))
		if err != nil {
			t.Fatal(err)
		}
		if owner := int(fi.Sys().(*syscall.Stat_t).Uid); owner != e.uid {
			t.Errorf("warm cache belongs to uid %d, want %d", owner, e.uid)
		}
	}
	t.Logf("warm: 0 compile actions, %d hits, restore %.1fs, melange %.1fs", *warm.Hits, warm.Pull.Seconds, warm.BuildSeconds)
}

// failConfig is a config whose build fails after its first line of output.
const failConfig = `package:
  name: fails
  version: 1.0.0
pipeline:
  - name: fail
    runs: |
      echo step-started
      exit 3
`

// quickConfig builds nothing: it proves melange ran.
const quickConfig = `package:
  name: quick
  version: 1.0.0
pipeline:
  - name: quick
    runs: |
      echo quick-step-ran
`

// sleepConfig starts a long step and records that it started and whether it
// finished.
const sleepConfig = `package:
  name: sleeps
  version: 1.0.0
pipeline:
  - name: sleep
    runs: |
      touch /home/build/started
      sleep 120
      touch /home/build/finished
`

// TestBuildFailureModes: a failing melange exits with its status and pushes
// nothing; SIGTERM reaches melange; with the registry down the build still
// runs and warns, and with --strict it fails before melange runs.
func TestBuildFailureModes(t *testing.T) {
	e := newE2E(t, -1)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	for name, cfg := range map[string]string{"fail": failConfig, "quick": quickConfig, "sleep": sleepConfig} {
		writeTestFile(t, filepath.Join(e.work, name, "melange.yaml"), cfg)
	}

	t.Run("failing melange", func(t *testing.T) {
		stdout, stderr, code := e.run(nil, "build", "fail/melange.yaml", "--dir", "cache", "--melange", e.melange,
			"--push", reg.Host+"/fail/cache:t")
		if code != 1 {
			t.Errorf("exit %d, want 1 (the stand-in's status for a failed build, as melange's)\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "step-started") || !strings.Contains(stderr, "unable to run pipeline") {
			t.Errorf("melange's output is missing: the failing step did not run?\n%s", stderr)
		}
		if !strings.Contains(stdout, "nothing: melange failed (exit 1)") {
			t.Errorf("the report does not say why nothing was pushed:\n%s", stdout)
		}
		if n := len(reg.Requests(t, "PUT", "/v2/fail/")) + len(reg.Requests(t, "POST", "/v2/fail/")); n != 0 {
			t.Errorf("registry saw %d uploads to fail/cache after a failed build, want none", n)
		}
	})

	t.Run("SIGTERM reaches melange", func(t *testing.T) {
		ws := filepath.Join(e.work, "ws-sleep")
		cmd := e.command(nil, "build", "sleep/melange.yaml", "--dir", "cache", "--melange", e.melange,
			"--", "--workspace-dir", ws)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		started := filepath.Join(ws, oci.HostArch(), "started")
		deadline := time.Now().Add(eventBound)
		for {
			if _, err := os.Stat(started); err == nil {
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the step never started:\n%s", stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(eventBound):
			_ = cmd.Process.Kill()
			t.Fatalf("melcache did not exit after SIGTERM (melange kept running?):\n%s", stderr.String())
		}
		if code := exitStatus(t, err); code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit %d, want %d (melange killed by SIGTERM)\n%s", code, 128+int(syscall.SIGTERM), stderr.String())
		}
		if !strings.Contains(stderr.String(), "melange was killed by signal 15") {
			t.Errorf("melcache does not report melange's death by SIGTERM:\n%s", stderr.String())
		}
		if _, err := os.Stat(filepath.Join(ws, oci.HostArch(), "finished")); err == nil {
			t.Errorf("the step finished: SIGTERM did not stop the build")
		}
	})

	// A loopback port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	t.Run("registry down", func(t *testing.T) {
		stdout, stderr, code := e.run(nil, "build", "quick/melange.yaml", "--dir", "cache", "--melange", e.melange,
			"--pull", down+"/x/cache:t", "--push", down+"/x/cache:t")
		if code != 0 {
			t.Errorf("exit %d, want 0: a cache problem must not fail the build\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "quick-step-ran") {
			t.Errorf("the build did not run:\n%s", stderr)
		}
		t.Logf("stderr:\n%s", stderr)
		if !strings.Contains(stderr, "melcache: warning: pull from "+down) || !strings.Contains(stderr, "melcache: warning: push to "+down) {
			t.Errorf("no warnings naming the registry for the pull and the push:\n%s", stderr)
		}
	})

	t.Run("registry down strict", func(t *testing.T) {
		stdout, stderr, code := e.run(nil, "build", "quick/melange.yaml", "--dir", "cache", "--melange", e.melange,
			"--strict", "--pull", down+"/x/cache:t")
		if code != 1 {
			t.Errorf("exit %d, want 1 with --strict\n%s\n%s", code, stdout, stderr)
		}
		if strings.Contains(stderr, "melange-standin is building") || strings.Contains(stderr, "quick-step-ran") {
			t.Errorf("melange ran despite --strict and a failed pull:\n%s", stderr)
		}
		if !strings.Contains(stderr, "melcache: pull from "+down) || !strings.Contains(stderr, "(--strict)") {
			t.Errorf("the error does not name the registry and --strict:\n%s", stderr)
		}
	})
}

// ownCacheConfig sets GOCACHE itself, which wins over melcache's env-file.
const ownCacheConfig = `package:
  name: own
  version: 1.0.0
environment:
  environment:
    GOCACHE: /home/build/gocache
pipeline:
  - name: show
    runs: |
      echo "guest-gocache=$GOCACHE"
      test -e /home/build/source-file.txt && echo source-copied
`

// TestBuildRewriteStandin runs --rewrite through the stand-in: without
// --force the YAML's value wins and build says so; with --force the
// rewritten copy gives the guest melcache's GOCACHE, the sources still come
// from the config's directory, and the user's file is unchanged.
func TestBuildRewriteStandin(t *testing.T) {
	e := newE2E(t, -1)
	cfg := filepath.Join(e.work, "own", "melange.yaml")
	writeTestFile(t, cfg, ownCacheConfig)
	writeTestFile(t, filepath.Join(e.work, "own", "source-file.txt"), "x")

	_, stderr, code := e.run(nil, "build", "own/melange.yaml", "--dir", "cache", "--melange", e.melange)
	if code != 0 || !strings.Contains(stderr, "guest-gocache=/home/build/gocache") ||
		!strings.Contains(stderr, "warning: own/melange.yaml:6:5: the config sets GOCACHE=/home/build/gocache") {
		t.Errorf("env-file build: exit %d; want the YAML's GOCACHE in the guest and a warning saying so:\n%s", code, stderr)
	}
	_, stderr, code = e.run(nil, "build", "own/melange.yaml", "--dir", "cache", "--melange", e.melange, "--rewrite", "--force")
	if code != 0 || !strings.Contains(stderr, "guest-gocache=/var/cache/melange/gocache") || !strings.Contains(stderr, "source-copied") {
		t.Errorf("--rewrite --force build: exit %d; want melcache's GOCACHE in the guest and the sources copied:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "warning:") {
		t.Errorf("--rewrite --force still warns:\n%s", stderr)
	}
	if b, _ := os.ReadFile(cfg); string(b) != ownCacheConfig {
		t.Errorf("the user's config changed:\n%s", b)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.work, "own")); len(ents) != 2 {
		t.Errorf("the config's directory holds %d entries, want the 2 the test wrote", len(ents))
	}
}

// TestBuildConcurrent runs two builds on one cache dir at once: builds hold
// the lock shared, so the second runs while the first is still in melange
// (the first's step waits for a file the second's step writes into the
// shared cache mount; with an exclusive lock neither could finish).
func TestBuildConcurrent(t *testing.T) {
	e := newE2E(t, -1)
	writeTestFile(t, filepath.Join(e.work, "a", "melange.yaml"), `package:
  name: a
  version: 1.0.0
pipeline:
  - runs: |
      touch /var/cache/melange/a-started
      i=0
      while [ ! -e /var/cache/melange/b-done ]; do
        i=$((i+1)); [ $i -lt 1200 ] || { echo "b never ran"; exit 1; }
        sleep 0.05
      done
      echo a-saw-b
`)
	writeTestFile(t, filepath.Join(e.work, "b", "melange.yaml"), `package:
  name: b
  version: 1.0.0
pipeline:
  - runs: |
      touch /var/cache/melange/b-done
`)
	if err := os.MkdirAll(filepath.Join(e.work, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := e.command(nil, "build", "a/melange.yaml", "--dir", "cache", "--melange", e.melange, "--no-wait")
	var aout bytes.Buffer
	a.Stdout, a.Stderr = &aout, &aout
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(eventBound)
	for {
		if _, err := os.Stat(filepath.Join(e.work, "cache", "a-started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = a.Process.Kill()
			_ = a.Wait()
			t.Fatalf("build a never started its step:\n%s", aout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// --no-wait: b fails at once if a held the lock exclusively.
	_, berr, code := e.run(nil, "build", "b/melange.yaml", "--dir", "cache", "--melange", e.melange, "--no-wait", "--strict")
	if code != 0 {
		t.Errorf("build b, while a runs: exit %d\n%s", code, berr)
	}
	if code := exitStatus(t, a.Wait()); code != 0 || !strings.Contains(aout.String(), "a-saw-b") {
		t.Errorf("build a: exit %d\n%s", code, aout.String())
	}
}
