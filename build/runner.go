package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// Runner runs melange. Run gives it the whole command line (argv[0] is the
// binary) and takes its exit status as the build's.
type Runner interface {
	// Run runs argv to completion and returns its exit status (128+N when
	// it died of signal N). err is for a command that could not run at all.
	Run(ctx context.Context, argv []string) (code int, err error)
}

// signalExitBase is added to a signal's number for the exit status of a
// process it killed, as shells report it.
const signalExitBase = 128

// ExecRunner runs melange as a child process. SIGINT and SIGTERM received
// by this process are forwarded to it, and Run waits for it to exit either
// way: melange cleans up its workspace and runner on those signals, so it
// must not be killed outright. ctx does not kill it for the same reason.
type ExecRunner struct {
	// Stdout and Stderr receive melange's output; nil means os.Stdout and
	// os.Stderr. A signal death is also reported on Stderr.
	Stdout, Stderr io.Writer
	// Log receives the forwarded signals; nil discards them.
	Log *slog.Logger
}

// Run implements Runner.
func (r ExecRunner) Run(_ context.Context, argv []string) (int, error) {
	stdout, stderr := r.Stdout, r.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	log := logger(r.Log)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			log.Info("forwarding signal to melange", "signal", s.String(), "pid", cmd.Process.Pid)
			_ = cmd.Process.Signal(s)
		case err := <-done:
			return exitStatus(stderr, argv[0], err)
		}
	}
}

// exitStatus turns cmd.Wait's error into an exit status.
func exitStatus(stderr io.Writer, name string, err error) (int, error) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(stderr, "melcache: melange was killed by signal %d (%v)\n", int(ws.Signal()), ws.Signal())
			return signalExitBase + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, fmt.Errorf("running %s: %w", name, err)
}

// FindMelange returns the melange binary: flag (the caller's --melange),
// else $MELANGE from getenv, else melange from PATH.
func FindMelange(flag string, getenv func(string) string) (string, error) {
	name, from := flag, "--melange"
	if name == "" {
		name, from = getenv("MELANGE"), "$MELANGE"
	}
	if name == "" {
		name, from = "melange", "PATH"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("melange binary %q (from %s): %w; give --melange PATH or set $MELANGE", name, from, err)
	}
	return p, nil
}

// RunnerFunc is a function used as a Runner, for tests and callers that
// run melange their own way.
type RunnerFunc func(ctx context.Context, argv []string) (int, error)

// Run implements Runner.
func (f RunnerFunc) Run(ctx context.Context, argv []string) (int, error) { return f(ctx, argv) }
