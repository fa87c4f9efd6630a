package main

import (
	"fmt"
	"os"

	"github.com/melcache/melcache/mount"
	"github.com/spf13/cobra"
)

func init() { addCommand(newDoctorCmd) }

// doctorReport is doctor's --json output.
type doctorReport struct {
	Dir    string        `json:"dir"`
	OK     bool          `json:"ok"`
	Checks []mount.Check `json:"checks"`
}

func newDoctorCmd(g *globals) *cobra.Command {
	var f cacheDirFlags
	var ownerFlag, config, source string
	var insecure, asJSON bool
	var caCert string
	c := &cobra.Command{
		Use:   "doctor [REF] [-- MELANGE-ARGS]",
		Short: "Diagnose why a cache does not help, with the fix for each problem",
		Long: `doctor checks everything that silently defeats the cache and prints one
pass/warn/fail line per check, each problem with its fix:

  dir         the cache directory exists (melange skips a missing --cache-dir)
  owner       the caches belong to, and are writable by, the user who runs
              melange (--owner, default you)
  disk        free space against the caches' size
  journal     an interrupted pull's journal or staging directory
  lock        who holds the cache lock
  last-build  the last build's hits and misses (after melcache mark)
  snapshot    the Go version and arch of the last snapshot pulled or pushed
              (read from REF, or the embedded store) against this build's
  runner      melange's runner, from $MELANGE_OPTS, $MELANGE_BUILD_OPTS and
              the arguments after -- (also read: --cache-dir, --env-file):
              qemu without QEMU_USE_VIRTIOFS=1 discards every cache write
  config      the GOMODCACHE and GOCACHE a build of --config really uses
              (YAML, then melange --env-file, then defaults) and inject's lint
  toolchain   go.mod's go line against the build's Go (GOTOOLCHAIN=local,
              or the config's go-1.NN package); sources from --source or the
              config's directory
  scheme, credentials, registry
              for REF: plain HTTP allowed, credentials found and accepted
              (the tag listing a pull starts with), the registry answers

It changes nothing. Exit status 1 when any check fails.`,
		Example: `  melcache doctor --dir ./melange-cache
  melcache doctor --dir /srv/cache --owner 1000 --config go-pkg.yaml ghcr.io/acme/gocache
  melcache doctor --config pkg.yaml -- --runner qemu --env-file pkg.env
  MELANGE_OPTS="--runner qemu" melcache doctor --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var after []string
			if n := cmd.ArgsLenAtDash(); n >= 0 {
				args, after = args[:n], args[n:]
			}
			if len(args) > 1 {
				return usageErrorf("doctor takes at most one REF before --, got %q", args)
			}
			var owner *mount.Owner
			if ownerFlag != "" {
				o, err := mount.ParseOwner(ownerFlag)
				if err != nil {
					return usageErrorf("--owner: %v", err)
				}
				owner = &o
			}
			m, err := doctorMelangeArgs(after, os.Getenv)
			if err != nil {
				return err
			}
			dir := f.dir
			var checks []mount.Check
			if m.cacheDir != "" {
				if !cmd.Flags().Changed("dir") {
					dir = m.cacheDir
				} else if m.cacheDir != f.dir {
					checks = append(checks, mount.Check{Name: "dir", Status: mount.CheckWarn,
						Message: fmt.Sprintf("melange gets --cache-dir %s but doctor checks --dir %s", m.cacheDir, f.dir),
						Fix:     "use the same directory for both"})
				}
			}
			l, err := mount.New(dir, mount.Options{Recipe: f.recipe})
			if err != nil {
				return err
			}
			checks = append(checks, l.Doctor(ctx, mount.DoctorOptions{Owner: owner})...)
			checks = append(checks, checkJournal(l), checkRunner(m, os.Getenv))
			if config != "" {
				checks = append(checks, checkConfig(config, m.envFiles)...)
			}
			if config != "" || source != "" {
				checks = append(checks, checkToolchain(ctx, config, source, m.envFiles))
			}
			so, err := storeOptions(insecure, caCert, g.log)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				checks = append(checks, checkStore(ctx, args[0], so)...)
			}
			if _, err := os.Stat(l.Dir); err == nil {
				checks = append(checks, checkSnapshotGo(ctx, l, argOr(args), config, so))
			}
			failed := false
			for _, c := range checks {
				failed = failed || c.Status == mount.CheckFail
			}
			if asJSON {
				if err := writeJSON(g.stdout, doctorReport{Dir: l.Dir, OK: !failed, Checks: checks}); err != nil {
					return err
				}
			} else {
				for _, c := range checks {
					line := fmt.Sprintf("%-4s  %-11s %s", c.Status, c.Name, c.Message)
					if c.Fix != "" && (c.Status == mount.CheckFail || c.Status == mount.CheckWarn) {
						line += "; fix: " + c.Fix
					}
					fmt.Fprintln(g.stdout, line)
				}
			}
			if failed {
				return &exitError{code: exitFailed}
			}
			return nil
		},
	}
	f.register(c, false)
	c.Flags().StringVar(&ownerFlag, "owner", "", "UID[:GID] of the user who runs melange (default: you)")
	c.Flags().StringVar(&config, "config", "", "melange YAML to check: cache env, lint, toolchain")
	c.Flags().StringVar(&source, "source", "", "source tree whose go.mod the toolchain check reads (default: --config's directory)")
	c.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	c.Flags().StringVar(&caCert, caCertFlag, "", caCertUsage)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
