package main

import (
	"errors"
	"fmt"

	"github.com/melcache/melcache/build"
)

// Exit codes shared by every command (README.md, "Exit status").
const (
	exitOK     = 0
	exitFailed = 1 // bad input, network, verification
	exitUsage  = 2 // bad flags or arguments
	exitCheck  = 3 // a --check or dry run found work to do
)

// exitError carries an exit code with an optional message. A nil err with a
// non-zero code exits silently (the command already reported).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a usage error (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// checkFound is returned by commands whose check found work (exit 3). The
// command has already printed what it found.
func checkFound() error { return &exitError{code: exitCheck} }

// exitCode maps an error returned by a command to the process exit status.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue *build.UsageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailed
}
