package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// buildUserID is the guest uid/gid a non-root melange runs steps as
// (pkg/container/bubblewrap_runner.go buildUserID = "1000").
const buildUserID = "1000"

// defaultPath is the PATH every step gets (pkg/build/pipeline.go runPipeline
// envOverride; the step's own environment may override it).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// sandbox runs commands the way pkg/container/bubblewrap_runner.go does.
type sandbox struct {
	base []string          // bwrap arguments before the environment
	env  map[string]string // the build environment (container Config.Environment)
	log  io.Writer
}

// newSandbox prepares the bwrap command line for a build.
//
// Deviation from melange, which binds an apko-built guest image at /: the
// stand-in assembles a minimal root from the host (read-only /usr, /etc and
// the /bin, /lib, /lib64, /sbin links or directories) plus the host's Go
// toolchain exposed as /usr/local/bin/go, like the `go` package a melange
// config installs. Nothing else of the host is visible.
func newSandbox(ctx context.Context, o buildOptions, cfg *configuration, ws string, log io.Writer) (*sandbox, error) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		// pkg/container/bubblewrap_runner.go TestUsability.
		return nil, fmt.Errorf("cannot use bubblewrap for containers: bwrap not found on $PATH")
	}
	goroot, err := hostGoroot(ctx)
	if err != nil {
		return nil, err
	}
	args := []string{"--ro-bind", "/usr", "/usr"}
	for _, d := range []string{"/bin", "/lib", "/lib64", "/sbin"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err != nil {
				return nil, err
			}
			args = append(args, "--symlink", target, d)
		case fi.IsDir():
			args = append(args, "--ro-bind", d, d)
		}
	}
	args = append(args, "--ro-bind", "/etc", "/etc", "--tmpfs", "/tmp")
	guestGoroot := goroot
	if !strings.HasPrefix(goroot, "/usr/") {
		guestGoroot = "/usr/lib/go-standin"
		args = append(args, "--ro-bind", goroot, guestGoroot)
	}
	args = append(args, "--tmpfs", "/usr/local/bin",
		"--symlink", guestGoroot+"/bin/go", "/usr/local/bin/go",
		"--symlink", guestGoroot+"/bin/gofmt", "/usr/local/bin/gofmt")

	// pkg/build/build.go buildWorkspaceConfig: the workspace at /home/build,
	// and --cache-dir at /var/cache/melange only when it is an existing
	// directory ("--cache-dir %s not a dir; skipping"), resolved to its real
	// path.
	args = append(args, "--bind", ws, guestWorkspace)
	if fi, err := os.Stat(o.cacheDir); err == nil && fi.IsDir() {
		src, err := filepath.EvalSymlinks(o.cacheDir)
		if err != nil {
			logf(log, "ERRO", "could not resolve path for --cache-dir: %s", err)
		}
		src, _ = filepath.Abs(src)
		args = append(args, "--bind", src, guestCache)
		logf(log, "INFO", "  cache dir: %s mounted at %s", src, guestCache)
	} else {
		logf(log, "INFO", "--cache-dir %s not a dir; skipping", o.cacheDir)
	}

	// pkg/container/bubblewrap_runner.go cmd.
	args = append(args, "--unshare-pid", "--die-with-parent",
		"--dev", "/dev",
		"--proc", "/proc",
		"--chdir", guestWorkspace,
		"--clearenv")
	switch {
	case cfg.Environment.Accounts.RunAs != "":
		args = append(args, "--unshare-user", "--uid", cfg.Environment.Accounts.RunAs, "--gid", cfg.Environment.Accounts.RunAs)
	case os.Getuid() > 0:
		// "if we're not using melange as root, we force the use of the
		// Apko build user": the host user maps to guest uid 1000.
		args = append(args, "--unshare-user", "--uid", buildUserID, "--gid", buildUserID)
	}
	args = append(args, "--new-session")
	// Deviation: melange passes --unshare-net only when the build's
	// networking capability is off (pkg/build/build.go sets it on). The
	// stand-in always builds hermetically, which is the case melcache's
	// offline builds must survive.
	args = append(args, "--unshare-net")
	// pkg/build/build.go buildWorkspaceConfig: the container environment is
	// SOURCE_DATE_EPOCH plus the configuration's environment.
	env := map[string]string{"SOURCE_DATE_EPOCH": sourceDateEpoch()}
	for k, v := range cfg.Environment.Environment {
		env[k] = v
	}
	return &sandbox{base: args, env: env, log: log}, nil
}

// sourceDateEpoch is the host's SOURCE_DATE_EPOCH, else 0 (melange uses the
// config's git commit time, else 0: the stand-in does not look at git).
func sourceDateEpoch() string {
	if v := strings.TrimSpace(os.Getenv("SOURCE_DATE_EPOCH")); v != "" {
		return v
	}
	return "0"
}

// hostGoroot finds the Go toolchain to expose in the guest.
func hostGoroot(ctx context.Context) (string, error) {
	if g := os.Getenv("MELANGE_STANDIN_GOROOT"); g != "" {
		return g, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("finding the Go toolchain for the guest (go env GOROOT): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// run executes argv in the sandbox with envOverride on top of the build
// environment, logging stdout at INFO and stderr at WARN
// (pkg/container/bubblewrap_runner.go Run with internal/logwriter).
func (s *sandbox) run(ctx context.Context, envOverride map[string]string, argv ...string) error {
	args := append([]string(nil), s.base...)
	for _, k := range sortedKeys(s.env) {
		args = append(args, "--setenv", k, s.env[k])
	}
	for _, k := range sortedKeys(envOverride) {
		args = append(args, "--setenv", k, envOverride[k])
	}
	args = append(args, argv...)
	cmd := exec.CommandContext(ctx, "bwrap", args...)
	stdout, stderr := lineLogger(s.log, "INFO"), lineLogger(s.log, "WARN")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	stdout.Close()
	stderr.Close()
	return err
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// lineLogger returns a writer that logs each line written to it.
func lineLogger(w io.Writer, level string) io.WriteCloser {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			logf(w, level, "%s", sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return &waitCloser{pw: pw, wg: &wg}
}

type waitCloser struct {
	pw *io.PipeWriter
	wg *sync.WaitGroup
}

func (c *waitCloser) Write(p []byte) (int, error) { return c.pw.Write(p) }
func (c *waitCloser) Close() error {
	err := c.pw.Close()
	c.wg.Wait()
	return err
}
