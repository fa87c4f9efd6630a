// Command melange-standin follows the contract of `melange build` closely
// enough for melcache's tests: melange itself cannot be installed where the
// tests run. It is not a package builder: it runs a config's pipeline steps in
// a bubblewrap sandbox exactly where melange would (workspace at /home/build,
// the cache directory at /var/cache/melange) with the environment melange
// would give them, and stops there (no APK is written).
//
// Every behaviour names the melange source file it copies (repository
// chainguard-dev/melange). Where the stand-in deviates, the comment says so
// and why.
//
// Usage:
//
//	melange-standin build CONFIG.yaml [--cache-dir DIR] [--env-file FILE]...
//	    [--arch ARCH] [--runner bubblewrap] [--workspace-dir DIR]
//	    [--source-dir DIR] [--debug] [--rm=false] [--empty-workspace]
//
// Exit status: 0 when every step succeeded, 1 otherwise (main.go: any error
// is logged and the process exits 1). SIGINT cancels the build; SIGTERM keeps
// Go's default action, as in melange, so the process dies at once and
// bwrap's --die-with-parent kills the running step.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	// main.go: only os.Interrupt is caught; the context it cancels kills the
	// running bwrap (exec.CommandContext). SIGTERM is left to the runtime.
	ctx, done := signal.NotifyContext(context.Background(), os.Interrupt)
	defer done()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		logf(os.Stderr, "ERRO", "%v", err)
		done()
		os.Exit(1)
	}
}

// run executes one command line.
func run(ctx context.Context, args []string, log io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: melange build CONFIG.yaml [flags]")
	}
	switch args[0] {
	case "build":
		o, err := parseBuildFlags(args[1:])
		if err != nil {
			return err
		}
		return build(ctx, o, log)
	case "version":
		fmt.Fprintln(os.Stdout, "melange-standin (follows the melange build contract; see its doc comment)")
		return nil
	}
	return fmt.Errorf("unknown command %q for \"melange\"", args[0])
}

// logf writes one melange-like log line: clog's text format, date, level,
// message (pkg/cli and internal/logwriter log every step line this way).
func logf(w io.Writer, level, format string, args ...any) {
	fmt.Fprintf(w, "%s %s %s\n", time.Now().Format("2006/01/02 15:04:05"), level, fmt.Sprintf(format, args...))
}
