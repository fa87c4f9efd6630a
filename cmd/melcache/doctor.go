package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/mount"
)

func init() { addCommand(newDoctorCmd) }

// doctorFlags are the flags of `melcache doctor`.
type doctorFlags struct {
	cacheDirFlags
	owner, config, source string
	insecure, json        bool
	caCert                string
}

// doctorLong is the help text of `melcache doctor`.
const doctorLong = `doctor checks everything that silently defeats the cache and prints one
pass/warn/fail line per check, each problem with its fix:

  dir         the cache directory exists (melange skips a missing --cache-dir)
  owner       the caches belong to, and are writable by, the user who runs
              melange (--owner, default you)
  disk        free space against the caches' size
  journal     an interrupted pull's journal or staging directory
  lock        who holds the cache lock
  last-build  the last build's compile actions run and reused (after
              melcache mark); a first build into an empty cache runs them all
  snapshot    the Go version and arch of the last snapshot pulled or pushed
              (read from REF, or the embedded store) against this build's
  runner      melange's runner, from $MELANGE_OPTS, $MELANGE_BUILD_OPTS and
              the arguments after -- (also read: --cache-dir, --env-file):
              qemu without QEMU_USE_VIRTIOFS=1 discards every cache write
  config      the GOMODCACHE and GOCACHE a build of --config really uses
              (YAML, then melange --env-file, then defaults) and inject's lint;
              after melcache build of that config in --dir, as that build
              ran it (its env-file or its --rewrite copy)
  toolchain   go.mod's go line against the build's Go (GOTOOLCHAIN=local,
              or the config's go-1.NN package); sources from --source or the
              config's directory
  scheme, credentials, registry
              for REF: plain HTTP allowed, credentials found and accepted
              (the tag listing a pull starts with), the registry answers

It changes nothing. Exit status 1 when any check fails.`

// doctorExample are the examples in the help of `melcache doctor`.
const doctorExample = `  melcache doctor --dir ./melange-cache
  melcache doctor --dir /srv/cache --owner 1000 --config go-pkg.yaml ghcr.io/acme/gocache
  melcache doctor --config pkg.yaml -- --runner qemu --env-file pkg.env
  MELANGE_OPTS="--runner qemu" melcache doctor --json`

func newDoctorCmd(g *globals) *cobra.Command {
	var df doctorFlags
	f := &df.cacheDirFlags
	c := &cobra.Command{
		Use:     "doctor [REF] [-- MELANGE-ARGS]",
		Short:   "Diagnose why a cache does not help, with the fix for each problem",
		Long:    doctorLong,
		Example: doctorExample,
		RunE:    func(cmd *cobra.Command, args []string) error { return runDoctor(cmd, g, &df, args) },
	}
	f.register(c, false)
	c.Flags().StringVar(&df.owner, "owner", "", "UID[:GID] of the user who runs melange (default: you)")
	c.Flags().StringVar(&df.config, "config", "", "melange YAML to check: cache env, lint, toolchain")
	c.Flags().StringVar(&df.source, "source", "", "source tree whose go.mod the toolchain check reads (default: --config's directory)")
	c.Flags().BoolVar(&df.insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	c.Flags().StringVar(&df.caCert, caCertFlag, "", caCertUsage)
	c.Flags().BoolVar(&df.json, "json", false, "print JSON")
	return c
}

// runDoctor runs build.Doctor with doctor's flags and prints one line per
// check, or JSON. Any failed check makes the exit status 1.
func runDoctor(cmd *cobra.Command, g *globals, f *doctorFlags, args []string) error {
	var after []string
	if n := cmd.ArgsLenAtDash(); n >= 0 {
		args, after = args[:n], args[n:]
	}
	if len(args) > 1 {
		return usageErrorf("doctor takes at most one REF before --, got %q", args)
	}
	o := build.DoctorOptions{Dir: f.dir, DirGiven: cmd.Flags().Changed("dir"), Recipe: f.recipe,
		Config: f.config, Source: f.source, Ref: argOr(args), MelangeArgs: after,
	}
	so, err := storeOptions(f.insecure, f.caCert, g.log)
	if err != nil {
		return err
	}
	o.Store = so
	if f.owner != "" {
		ow, err := mount.ParseOwner(f.owner)
		if err != nil {
			return usageErrorf("--owner: %v", err)
		}
		o.Owner = &ow
	}
	rep, err := build.Doctor(cmd.Context(), o)
	if err != nil {
		return err
	}
	if f.json {
		if err := writeJSON(g.stdout, rep); err != nil {
			return err
		}
	} else {
		printChecks(g, rep.Checks)
	}
	if !rep.OK {
		return &exitError{code: exitFailed}
	}
	return nil
}

// printChecks prints one line per check, with the fix of a problem.
func printChecks(g *globals, checks []mount.Check) {
	for _, c := range checks {
		line := fmt.Sprintf("%-4s  %-11s %s", c.Status, c.Name, c.Message)
		if c.Fix != "" && (c.Status == mount.CheckFail || c.Status == mount.CheckWarn) {
			line += "; fix: " + c.Fix
		}
		fmt.Fprintln(g.stdout, line)
	}
}
