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
// Behaviours, and the melange files (repository chainguard-dev/melange) they
// copy:
//
//   - flags, --cache-dir default ./melange-cache/, --source-dir defaulting to
//     the config's directory, runners: pkg/cli/build.go
//   - --env-file repeatable, later files winning: pkg/cli/build.go (v0.43+),
//     godotenv.Read as used by pkg/config/config.go
//   - env precedence (env-files, then the YAML's environment.environment on
//     top, then HOME, GOPATH, GOMODCACHE defaults where empty; no GOCACHE):
//     pkg/config/config.go ParseConfiguration
//   - workspace: --workspace-dir DIR/<arch> or a melange-workspace-* temp dir
//     removed with --rm; sources copied in honouring .melangeignore;
//     melange-out/<name> created; cache dir bind-mounted at
//     /var/cache/melange only when it is an existing directory, workspace at
//     /home/build; SOURCE_DATE_EPOCH in the environment:
//     pkg/build/build.go (initialize, populateWorkspace,
//     buildWorkspaceConfig), pkg/container/config.go (DefaultWorkspaceDir,
//     DefaultCacheDir)
//   - bwrap arguments (--unshare-pid --die-with-parent --dev --proc --chdir
//     /home/build --clearenv --new-session, --unshare-user --uid 1000 --gid
//     1000 when not root or run-as, --unshare-net, --setenv per variable):
//     pkg/container/bubblewrap_runner.go
//   - each step: `set -e`, mkdir and cd into the working directory, the
//     fragment, `exit 0`; PATH reset and the step's environment on top;
//     "running step" log lines; children inheriting environment and
//     working-directory; "unable to run pipeline" errors:
//     pkg/build/pipeline.go, pkg/config/config.go (propagatePipelines)
//   - ${{package.*}}, ${{targets.*}}, ${{vars.*}}, ${{inputs.*}},
//     ${{build.arch}}; undefined variables are errors:
//     pkg/build/pipeline.go (NewSubstitutionMap, MutateWith), pkg/util
//     (MutateStringFromMap)
//   - go/build: pkg/build/pipelines/go/build.yaml (inputs and defaults,
//     export GOMODCACHE=/var/cache/melange/gomodcache, -trimpath, -tags
//     netgo,osusergo, GOAMD64=v2, -ldflags "-w ...")
//   - git-checkout: pkg/build/pipelines/git-checkout.yaml
//   - stdout at INFO, stderr at WARN, errors at ERRO, exit 1: main.go,
//     pkg/container/bubblewrap_runner.go (logwriter)
//
// Deviations, each explained where it is made: a minimal root assembled from
// the host instead of an apko image (with the host Go at /usr/local/bin/go),
// the network always unshared, git-checkout run on the host, no `if:`
// conditions and no pipelines besides go/build and git-checkout, no APK
// written.
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
