package melangetest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
)

// eventBound bounds the waits for something the test itself caused (a step
// starting, a killed process disappearing). They happen in milliseconds; the
// bound only stops a broken stand-in from hanging the test.
const eventBound = 60 * time.Second

// helloConfig builds the test module with go/build and checks, in a runs:
// step with its own environment, what the guest sees.
const helloConfig = `package:
  name: hello
  version: 1.2.3
  epoch: 0
environment:
  contents:
    packages:
      - go-1.26
      - busybox
  environment:
    GOPROXY: "off"
    GOSUMDB: "off"
    GOTOOLCHAIN: local
    FOO: yaml
pipeline:
  - uses: go/build
    with:
      packages: ./cmd/hello
      output: hello
      ldflags: -X main.version=${{package.version}}
  - name: check the guest
    environment:
      STEPVAR: step
    runs: |
      ${{targets.contextdir}}/usr/bin/hello > out.txt
      id -u > uid.txt
      env | sort > env.txt
      cat /proc/net/dev > net.txt
`

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// standin runs the stand-in and returns its combined output and error.
func standin(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestStandinBuildsOffline builds a real multi-package module with
// third-party dependencies under bwrap with no network, reading modules only
// from the mounted cache dir, and checks the environment precedence, the
// go/build pipeline's GOMODCACHE export and -trimpath, the guest user, and
// that GOCACHE from an env-file lands in the cache dir.
func TestStandinBuildsOffline(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (bwrap, real Go build)")
	testenv.RequireTool(t, "bwrap")
	proxy := FileProxy(t)
	work := testenv.TempDir(t)
	src := CopyModule(t, filepath.Join(work, "src"))
	writeFile(t, filepath.Join(src, "melange.yaml"), helloConfig)

	// Populate the cache dir's module cache on the host, as `melcache
	// preload` or a restore would.
	cache := filepath.Join(work, "cache")
	modcache := filepath.Join(cache, "gomodcache")
	Run(t, src, OfflineEnv(proxy, modcache), "go", "mod", "download")

	// env-file: GOCACHE into the mount; FOO loses to the YAML; GOPATH wins
	// over melange's default; GOMODCACHE points away from the mount, which
	// go/build's unconditional export must override.
	envFile := filepath.Join(work, "build.env")
	writeFile(t, envFile, "# melcache env-file\nGOCACHE=/var/cache/melange/gocache\nFOO=file\nBAR=file\nexport GOPATH=\"/home/build/gopath-from-file\"\nGOMODCACHE=/home/build/wrong-modcache\n")

	out, err := standin(t, work, "build", "src/melange.yaml", "--cache-dir", cache, "--env-file", envFile,
		"--workspace-dir", filepath.Join(work, "ws"), "--runner", "bubblewrap")
	if err != nil {
		t.Fatalf("stand-in build: %v\n%s", err, out)
	}
	ws := filepath.Join(work, "ws", hostArchForTest())
	if got, want := strings.TrimSpace(readFile(t, filepath.Join(ws, "out.txt"))), "hello, melange (version v1.2.3, major v1)"; got != want {
		t.Errorf("the built program in the guest printed %q, want %q", got, want)
	}
	bin := filepath.Join(ws, "melange-out", "hello", "usr", "bin", "hello")
	info := string(Run(t, work, os.Environ(), "go", "version", "-m", bin))
	for _, want := range []string{"-trimpath=true", "netgo,osusergo", "GOAMD64=v2"} {
		if hostArchForTest() == "x86_64" || want != "GOAMD64=v2" {
			if !strings.Contains(info, want) {
				t.Errorf("go version -m %s lacks %q (go/build's flags):\n%s", bin, want, info)
			}
		}
	}

	env := readFile(t, filepath.Join(ws, "env.txt"))
	for _, want := range []string{
		"FOO=yaml",                              // YAML over env-file
		"BAR=file",                              // env-file
		"GOPATH=/home/build/gopath-from-file",   // env-file over melange's default
		"HOME=/home/build",                      // melange's default
		"GOMODCACHE=/home/build/wrong-modcache", // a runs: step keeps the env-file's value
		"GOCACHE=/var/cache/melange/gocache",
		"STEPVAR=step", // the step's environment
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SOURCE_DATE_EPOCH=",
	} {
		if !strings.Contains(env, want+"\n") && !strings.Contains(env, want) {
			t.Errorf("guest environment lacks %s:\n%s", want, env)
		}
	}

	wantUID := "1000"
	if os.Getuid() == 0 {
		wantUID = "0"
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(ws, "uid.txt"))); got != wantUID {
		t.Errorf("guest uid %s, want %s", got, wantUID)
	}

	var ifaces []string
	for _, l := range strings.Split(readFile(t, filepath.Join(ws, "net.txt")), "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			ifaces = append(ifaces, strings.TrimSpace(name))
		}
	}
	if len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Errorf("guest network interfaces %v, want only lo (bwrap --unshare-net)", ifaces)
	}

	if n := countSuffix(t, filepath.Join(cache, "gocache"), "-a"); n < 10 {
		t.Errorf("%d GOCACHE action entries in the cache dir, want the build's (at least 10)", n)
	}
	// The guest wrote no module cache elsewhere: the wrong GOMODCACHE from
	// the env-file was never used by go/build.
	if _, err := os.Stat(filepath.Join(ws, "wrong-modcache")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("go/build used the env-file's GOMODCACHE (%v)", err)
	}
}

func hostArchForTest() string { return hostArchName() }

func countSuffix(t testing.TB, dir, suffix string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(d.Name(), suffix) {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStandinCacheDirOnlyIfExists checks melange's rule: --cache-dir is
// mounted only when it is an existing directory; the default is
// ./melange-cache/.
func TestStandinCacheDirOnlyIfExists(t *testing.T) {
	testenv.RequireTool(t, "bwrap")
	work := testenv.TempDir(t)
	writeFile(t, filepath.Join(work, "src", "melange.yaml"), `package:
  name: probe
  version: "1"
pipeline:
  - runs: |
      if [ -d /var/cache/melange ]; then echo mounted; else echo absent; fi > mount.txt
      if [ -e /var/cache/melange/marker ]; then echo marker >> mount.txt; fi
`)
	for _, tc := range []struct {
		name    string
		args    []string
		mkdir   string
		want    string
		wantLog string
	}{
		{name: "missing", args: []string{"--cache-dir", filepath.Join(work, "nope")}, want: "absent", wantLog: "not a dir; skipping"},
		{name: "default-missing", want: "absent", wantLog: "--cache-dir ./melange-cache/ not a dir; skipping"},
		{name: "default-present", mkdir: filepath.Join(work, "melange-cache"), want: "mounted\nmarker"},
		{name: "explicit", args: []string{"--cache-dir", filepath.Join(work, "c")}, mkdir: filepath.Join(work, "c"), want: "mounted\nmarker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mkdir != "" {
				writeFile(t, filepath.Join(tc.mkdir, "marker"), "x")
			}
			ws := filepath.Join(work, "ws-"+tc.name)
			args := append([]string{"build", "src/melange.yaml", "--workspace-dir", ws}, tc.args...)
			out, err := standin(t, work, args...)
			if err != nil {
				t.Fatalf("stand-in: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(readFile(t, filepath.Join(ws, hostArchForTest(), "mount.txt"))); got != tc.want {
				t.Errorf("guest saw %q, want %q", got, tc.want)
			}
			if !strings.Contains(out, tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, out)
			}
		})
	}
}

// TestStandinStepFails checks that a failing step stops the build with a
// non-zero exit and melange's error line, and later steps do not run.
func TestStandinStepFails(t *testing.T) {
	testenv.RequireTool(t, "bwrap")
	work := testenv.TempDir(t)
	writeFile(t, filepath.Join(work, "melange.yaml"), `package:
  name: fails
  version: "1"
pipeline:
  - name: breaks
    runs: |
      echo about to fail >&2
      exit 3
  - name: never
    runs: touch never-ran
`)
	out, err := standin(t, work, "build", "melange.yaml", "--workspace-dir", filepath.Join(work, "ws"))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("stand-in with a failing step: err %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{`ERRO failed to build package: unable to run pipeline: step "breaks": exit status 3`, "WARN about to fail"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "ws", hostArchForTest(), "never-ran")); err == nil {
		t.Error("the step after the failing one ran")
	}
	// A config error names the file.
	writeFile(t, filepath.Join(work, "bad.yaml"), "package:\n  name: [x\n")
	out, err = standin(t, work, "build", "bad.yaml")
	if err == nil || !strings.Contains(out, "bad.yaml") {
		t.Errorf("bad YAML: err %v, output should name bad.yaml:\n%s", err, out)
	}
}

// TestStandinSIGTERM checks that SIGTERM kills the stand-in and, through
// bwrap's --die-with-parent, the running step.
func TestStandinSIGTERM(t *testing.T) {
	testenv.RequireTool(t, "bwrap")
	work := testenv.TempDir(t)
	marker := fmt.Sprintf("standin-sigterm-%d-%d", os.Getpid(), time.Now().UnixNano())
	writeFile(t, filepath.Join(work, "melange.yaml"), `package:
  name: sleeper
  version: "1"
pipeline:
  - runs: |
      touch started
      while :; do sleep 1; done # `+marker+`
`)
	ws := filepath.Join(work, "ws")
	cmd := exec.Command(Binary(t), "build", "melange.yaml", "--workspace-dir", ws)
	cmd.Dir = work
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(ws, hostArchForTest(), "started")
	waitFor(t, "the step to start", func() bool { _, err := os.Stat(started); return err == nil })
	if len(processesWith(marker)) == 0 {
		t.Fatal("the step's shell is not visible in /proc")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("stand-in after SIGTERM: %v, want it killed\n%s", err, out.String())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("stand-in exit %v, want death by SIGTERM", err)
	}
	waitFor(t, "the step to die", func() bool { return len(processesWith(marker)) == 0 })
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, eventBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesWith lists the pids whose command line contains s.
func processesWith(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestStandinGuestUser checks the bubblewrap runner's user mapping: a
// non-root melange runs steps as uid 1000 in a user namespace, and what the
// guest writes belongs on the host to the user who ran melange. As root the
// test runs the stand-in as uid 4321 through setpriv, so the host owner and
// the guest uid differ.
func TestStandinGuestUser(t *testing.T) {
	testenv.RequireTool(t, "bwrap")
	bin := Binary(t)
	base := testenv.TempDir(t)
	hostUID := os.Getuid()
	var prefix []string
	if hostUID == 0 {
		testenv.RequireTool(t, "setpriv")
		hostUID = 4321
		prefix = []string{"setpriv", "--reuid", "4321", "--regid", "4321", "--clear-groups", "--"}
		// Let the unprivileged user reach its work dir.
		for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	work := filepath.Join(base, "work")
	writeFile(t, filepath.Join(work, "melange.yaml"), `package:
  name: who
  version: "1"
pipeline:
  - runs: |
      id -u > uid.txt
      touch /var/cache/melange/written-by-guest
`)
	writeFile(t, filepath.Join(work, "melange-cache", ".keep"), "")
	if err := filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, hostUID, hostUID)
	}); err != nil && os.Getuid() == 0 {
		t.Fatal(err)
	}
	argv := append(prefix, bin, "build", "melange.yaml", "--workspace-dir", filepath.Join(work, "ws"))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+work, testenv.GoConfigEnv(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(work, "ws", hostArchForTest(), "uid.txt"))); got != "1000" {
		t.Errorf("guest uid %s, want 1000 (the build user) for a non-root melange", got)
	}
	fi, err := os.Stat(filepath.Join(work, "melange-cache", "written-by-guest"))
	if err != nil {
		t.Fatal(err)
	}
	if owner := int(fi.Sys().(*syscall.Stat_t).Uid); owner != hostUID {
		t.Errorf("the guest's file in the cache dir belongs to uid %d on the host, want %d (the user who ran melange)", owner, hostUID)
	}
}

// TestStandinGitCheckoutAndSubstitutions checks the git-checkout step
// (tag with ${{package.version}} substituted, expected-commit verified),
// melange's substitutions, working-directory and subpackage pipelines.
func TestStandinGitCheckoutAndSubstitutions(t *testing.T) {
	testenv.RequireTool(t, "bwrap")
	testenv.RequireTool(t, "git")
	work := testenv.TempDir(t)
	repo := CopyModule(t, filepath.Join(work, "repo"))
	gitEnv := append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	Run(t, repo, gitEnv, "git", "init", "--quiet")
	Run(t, repo, gitEnv, "git", "add", "-A")
	Run(t, repo, gitEnv, "git", "commit", "--quiet", "-m", "v2")
	Run(t, repo, gitEnv, "git", "tag", "v2.0.1")
	commit := strings.TrimSpace(string(Run(t, repo, gitEnv, "git", "rev-parse", "HEAD")))

	config := `package:
  name: subst
  version: 2.0.1
  epoch: 3
vars:
  greeting: hi-${{package.name}}
pipeline:
  - uses: git-checkout
    with:
      repository: ` + repo + `
      tag: v${{package.version}}
      expected-commit: EXPECTED
      destination: src
  - working-directory: src
    runs: |
      head -n 1 go.mod > ../mod.txt
      pwd > ../pwd.txt
  - runs: |
      echo "${{package.name}} ${{package.version}} ${{package.full-version}} ${{targets.destdir}} ${{targets.contextdir}} ${{vars.greeting}} ${{build.arch}}" > subst.txt
subpackages:
  - name: subst-doc
    pipeline:
      - runs: echo "${{targets.contextdir}} ${{targets.subpkgdir}}" > sub.txt
`
	writeFile(t, filepath.Join(work, "ok", "melange.yaml"), strings.Replace(config, "EXPECTED", commit, 1))
	out, err := standin(t, work, "build", "ok/melange.yaml", "--workspace-dir", filepath.Join(work, "ws"))
	if err != nil {
		t.Fatalf("stand-in: %v\n%s", err, out)
	}
	ws := filepath.Join(work, "ws", hostArchForTest())
	for file, want := range map[string]string{
		"mod.txt":   "module example.com/hello",
		"pwd.txt":   "/home/build/src",
		"subst.txt": "subst 2.0.1 2.0.1-r3 /home/build/melange-out/subst /home/build/melange-out/subst hi-subst " + hostArchForTest(),
		"sub.txt":   "/home/build/melange-out/subst-doc /home/build/melange-out/subst-doc",
	} {
		if got := strings.TrimSpace(readFile(t, filepath.Join(ws, file))); got != want {
			t.Errorf("%s: %q, want %q", file, got, want)
		}
	}
	if !strings.Contains(out, "[git checkout] tag v2.0.1 is "+commit) {
		t.Errorf("log lacks the checked-out tag:\n%s", out)
	}

	// A wrong expected-commit fails the build, naming both commits.
	wrong := strings.Repeat("1", 40)
	writeFile(t, filepath.Join(work, "bad", "melange.yaml"), strings.Replace(config, "EXPECTED", wrong, 1))
	out, err = standin(t, work, "build", "bad/melange.yaml", "--workspace-dir", filepath.Join(work, "ws-bad"))
	if err == nil || !strings.Contains(out, "Expected commit "+wrong+" for v2.0.1, found "+commit) {
		t.Errorf("wrong expected-commit: err %v, output:\n%s", err, out)
	}

	// An undefined variable fails like melange's.
	writeFile(t, filepath.Join(work, "undef", "melange.yaml"), "package:\n  name: u\n  version: \"1\"\npipeline:\n  - runs: echo ${{vars.nope}}\n")
	out, err = standin(t, work, "build", "undef/melange.yaml")
	if err == nil || !strings.Contains(out, "variable vars.nope not defined") {
		t.Errorf("undefined variable: err %v, output:\n%s", err, out)
	}
}

// TestStandinFlags checks the command-line contract's refusals: the stand-in
// fails clearly where it cannot behave like melange.
func TestStandinFlags(t *testing.T) {
	work := testenv.TempDir(t)
	writeFile(t, filepath.Join(work, "melange.yaml"), "package:\n  name: f\n  version: \"1\"\npipeline:\n  - runs: \"true\"\n")
	other := "aarch64"
	if hostArchForTest() == "aarch64" {
		other = "x86_64"
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "melange.yaml", "--arch", other}, "--arch " + other + ": the stand-in builds only for the host"},
		{[]string{"build", "melange.yaml", "--runner", "qemu"}, `runner "qemu": the stand-in implements only the bubblewrap runner`},
		{[]string{"build", "melange.yaml", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"build"}, "melange.yaml is missing"},
		{[]string{"test", "melange.yaml"}, `unknown command "test"`},
		{[]string{"build", "melange.yaml", "--env-file", "missing.env"}, "loading environment file: open missing.env"},
	} {
		out, err := standin(t, work, tc.args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("melange %s: err %v, want exit 1 and %q in:\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
	// The host arch under either name is accepted (apko's ParseArchitecture).
	for _, a := range []string{hostArchForTest(), goArchName()} {
		if out, err := standin(t, work, "build", "melange.yaml", "--arch", a, "--runner", "bubblewrap"); err != nil && !strings.Contains(out, "bwrap not found") {
			t.Errorf("--arch %s: %v\n%s", a, err, out)
		}
	}
}

func goArchName() string {
	if hostArchForTest() == "aarch64" {
		return "arm64"
	}
	return "amd64"
}
