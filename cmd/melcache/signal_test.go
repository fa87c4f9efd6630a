package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/mount"
)

// signalWait bounds how long a test waits for a signalled melcache to exit:
// a safety net against a hang, not a timing assertion.
const signalWait = time.Minute

// startWaiting starts melcache with args and returns once its first stderr
// line contains want (it is then blocked where the test wants it), with a
// reader for the rest of stderr.
func startWaiting(t *testing.T, want string, env []string, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command("melcache", args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stderr)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("melcache %v exited before %q: %v (last %q)", args, want, err, line)
		}
		if strings.Contains(line, want) {
			return cmd, r
		}
	}
}

// signalAndWait sends sig to cmd and returns its exit status and the rest
// of its stderr.
func signalAndWait(t *testing.T, cmd *exec.Cmd, r *bufio.Reader, sig syscall.Signal) (int, string) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); rest <- string(b) }()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(signalWait):
		cmd.Process.Kill()
		t.Fatalf("melcache still running %v after %v", sig, signalWait)
	}
	return cmd.ProcessState.ExitCode(), <-rest
}

// TestSignalExit: a command interrupted while it waits for the cache lock
// (held by this test) prints one line and exits 130 on SIGINT, 143 on
// SIGTERM, and changes nothing; so does `build` before melange starts.
func TestSignalExit(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "mc")
	if out, err := exec.Command("melcache", "prepare", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("prepare: %v\n%s", err, out)
	}
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	held, err := l.Lock(ctx, mount.Exclusive, mount.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	cfg := filepath.Join(t.TempDir(), "pkg.yaml")
	os.WriteFile(cfg, []byte("package:\n  name: p\n  version: 1.0.0\npipeline:\n  - runs: true\n"), 0o644)
	melange := filepath.Join(t.TempDir(), "melange")
	os.WriteFile(melange, []byte("#!/bin/sh\necho melange ran >&2\n"), 0o755)

	for _, tc := range []struct {
		args []string
		sig  syscall.Signal
		code int
	}{
		{[]string{"clean", "--dir", dir}, syscall.SIGINT, 130},
		{[]string{"clean", "--dir", dir}, syscall.SIGTERM, 143},
		{[]string{"verify", "--repair", "--dir", dir}, syscall.SIGTERM, 143},
		{[]string{"build", cfg, "--dir", dir, "--melange", melange}, syscall.SIGINT, 130},
	} {
		name := tc.args[0]
		t.Run(fmt.Sprintf("%s-%v", name, tc.sig), func(t *testing.T) {
			cmd, r := startWaiting(t, "waiting for the lock on "+dir, nil, tc.args...)
			code, rest := signalAndWait(t, cmd, r, tc.sig)
			want := fmt.Sprintf("melcache %s: interrupted by %s\n", name, signalName(tc.sig))
			if code != tc.code || rest != want {
				t.Errorf("melcache %v after %v: exit %d, stderr %q; want exit %d and %q", tc.args, tc.sig, code, rest, tc.code, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "gocache", "README")); err != nil {
				t.Errorf("the interrupted command changed the cache: %v", err)
			}
		})
	}
}

// TestSignalBuildKeepsMelangeStatus: once melange runs, `build` forwards
// the signal and exits with melange's own status, whatever it is.
func TestSignalBuildKeepsMelangeStatus(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, "mc")
	cfg := filepath.Join(work, "pkg.yaml")
	os.WriteFile(cfg, []byte("package:\n  name: p\n  version: 1.0.0\npipeline:\n  - runs: true\n"), 0o644)
	// A melange that says it started, then exits 7 on SIGINT and 9 on
	// SIGTERM: statuses no rule of melcache's would produce.
	melange := filepath.Join(work, "melange")
	os.WriteFile(melange, []byte("#!/bin/sh\ntrap 'exit 7' INT\ntrap 'exit 9' TERM\necho melange started >&2\nwhile :; do sleep 1; done\n"), 0o755)
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 7, syscall.SIGTERM: 9} {
		cmd, r := startWaiting(t, "melange started", nil, "build", cfg, "--dir", dir, "--melange", melange)
		code, rest := signalAndWait(t, cmd, r, sig)
		if code != want || strings.Contains(rest, "interrupted") {
			t.Errorf("build after %v with melange running: exit %d, stderr %q; want melange's %d and no interrupt message", sig, code, rest, want)
		}
	}
}
