package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// signalExitBase is added to a signal's number for the exit status of a
// command it stopped, as shells report it: 130 for SIGINT, 143 for SIGTERM.
const signalExitBase = 128

// interrupted is the cancellation cause of the command's context when a
// signal stops it.
type interrupted struct{ sig syscall.Signal }

func (i *interrupted) Error() string { return "interrupted by " + signalName(i.sig) }

// code is the exit status of an interrupted command.
func (i *interrupted) code() int { return signalExitBase + int(i.sig) }

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// notifyInterrupt returns a context cancelled, with an *interrupted cause,
// by the first SIGINT or SIGTERM. Later ones are caught too (and dropped),
// so that a command that cleans up on cancellation is not killed halfway;
// `melcache build` forwards them to melange itself.
func notifyInterrupt(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	// A reader that goes away (melcache build ... | head -1) must not kill
	// melcache halfway: with SIGPIPE handled, a write to the closed stdout
	// or stderr fails with EPIPE instead, and the deferred cleanups (build's
	// temporary dir, locks) still run. The signals are dropped: nothing
	// reads the channel. Children still get SIGPIPE's default action, as Go
	// resets handled signals on exec.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			cancel(&interrupted{sig: sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel(nil)
	}
}

// interruptExit applies the exit rule of an interrupted command: a command
// that already reported its own status (build, once melange ran: melange's
// status) keeps it; any other prints one line and exits 130 or 143. ok is
// false when ctx was not interrupted.
func interruptExit(ctx context.Context, g *globals, name string, err error) (code int, ok bool) {
	var ir *interrupted
	if !errors.As(context.Cause(ctx), &ir) {
		return 0, false
	}
	var ee *exitError
	switch {
	case err == nil:
		return exitOK, true
	case errors.As(err, &ee) && ee.err == nil:
		return ee.code, true
	}
	fmt.Fprintf(g.stderr, "melcache %s: %v\n", name, ir)
	return ir.code(), true
}
