package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/internal/safetext"
	"github.com/spf13/cobra"
)

// commandFactories holds the constructors of every subcommand. Each command's
// file registers its own in an init function, so adding a command touches one
// file only.
var commandFactories []func(*globals) *cobra.Command

func addCommand(f func(*globals) *cobra.Command) { commandFactories = append(commandFactories, f) }

// globals are the flags and streams every command shares.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	verbose        bool
	quiet          bool
	log            *slog.Logger
	// safeOut is g.stdout's escaping wrapper once a command runs (nil
	// for commands marked rawStdout): see run.
	safeOut *safetext.Writer
}

// rawStdout returns stdout without the escaping wrapper, for output that is
// the user's own (melange's log).
func (g *globals) rawStdout() io.Writer {
	if g.safeOut != nil {
		return g.safeOut.Unwrap()
	}
	return g.stdout
}

// rawStdout marks a command (in its Annotations) whose stdout is the
// user's own content passed through — melange's log, rewritten YAML — and
// so is not escaped. Every other command's stdout goes through
// safetext.Writer: what it prints may come from a snapshot or a registry
// (issue 11, finding 11).
const rawStdout = "melcache/raw-stdout"

// newRoot builds the command tree.
func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "melcache",
		Short: "Warm Go caches for melange builds, moved between builders as OCI artifacts",
		Long: `melcache makes Go builds inside melange start warm.

melange mounts a host cache directory at /var/cache/melange, but nothing points
Go's build cache there and nothing moves that directory between builders.
melcache prepares the directory (gomodcache/ and gocache/, owned by the user who
runs melange), rewrites melange YAML so Go uses both caches, snapshots them as
OCI artifacts with incremental layers, and restores them safely elsewhere.

Exit status: 0 ok, 1 failed, 2 usage error, 3 a check found work to do,
130 interrupted by SIGINT, 143 by SIGTERM (build: melange's status once it
has started).`,
		Example: `  melcache prepare                      # ./melange-cache, as melange build uses by default
  melcache status --json
  melange build --cache-dir ./melange-cache pkg.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelInfo
			switch {
			case g.verbose:
				level = slog.LevelDebug
			case g.quiet:
				level = slog.LevelWarn
			}
			g.log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			if cmd.Annotations[rawStdout] == "" && g.safeOut == nil {
				g.safeOut = safetext.NewWriter(g.stdout)
				g.stdout = g.safeOut
			}
		},
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log details to stderr")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "log warnings and errors only")
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath())}
	})
	cmds := make([]*cobra.Command, 0, len(commandFactories))
	for _, f := range commandFactories {
		cmds = append(cmds, f(g))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return root
}

// Main runs melcache with os.Args and returns the exit status.
func Main() int {
	g := &globals{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	ctx, stop := notifyInterrupt(context.Background())
	defer stop()
	return run(ctx, g, os.Args[1:])
}

// run executes one command line and reports its error on g.stderr.
func run(ctx context.Context, g *globals, args []string) int {
	root := newRoot(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if g.safeOut != nil {
		g.safeOut.Flush()
	}
	if err == nil {
		return exitOK
	}
	if code, ok := interruptExit(ctx, g, cmd.Name(), err); ok {
		return code
	}
	code := exitCode(err)
	var ee *exitError
	if errors.As(err, &ee) && ee.err == nil {
		return code
	}
	if ye := yamlError(err); ye != nil {
		fmt.Fprintf(g.stderr, "%s\n", safetext.Lines(ye.Error()))
		return exitFailed
	}
	// cobra reports unknown commands and argument-count errors as plain
	// errors; they are usage errors.
	if code == exitFailed && isCobraUsage(err) {
		code = exitUsage
		err = fmt.Errorf("%w\nrun '%s --help' for usage", err, cmd.CommandPath())
	}
	// Errors quote tags, paths and annotations from snapshots and
	// registries: escaped, as stdout is (newlines kept for the usage hint).
	fmt.Fprintf(g.stderr, "melcache: %s\n", safetext.Lines(err.Error()))
	return code
}

// yamlError returns the malformed melange config behind err, if any. Every
// command prints it alone, "FILE:LINE:COL: message" as inject does: the
// position names the problem, and what the command was doing when it read
// the config ("preload: ", "--key ...: ") would only be a prefix. It is
// bad input, so exit 1 even under a flag's usage error.
func yamlError(err error) *envinject.Error {
	var ye *envinject.Error
	if errors.As(err, &ye) && ye.File != "" {
		return ye
	}
	return nil
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "received ", "unknown flag", "unknown shorthand", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
