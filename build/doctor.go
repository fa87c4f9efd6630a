package build

import (
	"context"
	"fmt"
	"os"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// DoctorOptions configure Doctor.
type DoctorOptions struct {
	// Dir is the cache directory; DirGiven says the caller chose it, so
	// that melange's --cache-dir does not replace it (a mismatch is then a
	// warning).
	Dir      string
	DirGiven bool
	// Recipe: Dir is GOMODCACHE itself (mount.Options.Recipe).
	Recipe bool
	// Owner is the user who runs melange; nil means the current user.
	Owner *mount.Owner
	// Config is a melange YAML to check (cache environment, lint,
	// toolchain); Source a source tree for the toolchain check.
	Config, Source string
	// Ref is a snapshot reference to probe ("" probes none; the snapshot
	// check then reads the embedded store).
	Ref string
	// MelangeArgs are the arguments after "--"; MELANGE_OPTS and
	// MELANGE_BUILD_OPTS from Getenv come before them.
	MelangeArgs []string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Store configures opening Ref (Insecure, CACert, Logger).
	Store oci.StoreOptions
}

// DoctorReport is Doctor's outcome; the CLI prints it as lines or JSON.
type DoctorReport struct {
	Dir string `json:"dir"`
	// OK is false when any check failed.
	OK     bool          `json:"ok"`
	Checks []mount.Check `json:"checks"`
}

// Doctor checks everything that silently defeats the cache: the cache
// directory's own checks (mount.Layout.Doctor), an interrupted restore,
// melange's runner, the caches a build of o.Config really uses, the
// toolchain, the registry o.Ref names and the last snapshot's Go version
// and arch. It changes nothing. err is for input that cannot be checked
// (a melange flag without its value: a *UsageError; a bad Dir; a
// malformed o.Config: an *envinject.Error, "file:line:col: msg", as every
// command reports it); failed checks are in the report.
func Doctor(ctx context.Context, o DoctorOptions) (*DoctorReport, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	m, err := MelangeCommandLine(o.MelangeArgs, getenv)
	if err != nil {
		return nil, err
	}
	if err := malformedConfig(o.Config); err != nil {
		return nil, err
	}
	dir := o.Dir
	var checks []check
	if m.CacheDir != "" {
		if !o.DirGiven {
			dir = m.CacheDir
		} else if m.CacheDir != o.Dir {
			checks = append(checks, check{Name: "dir", Status: mount.CheckWarn,
				Message: fmt.Sprintf("melange gets --cache-dir %s but doctor checks --dir %s", m.CacheDir, o.Dir),
				Fix:     "use the same directory for both"})
		}
	}
	l, err := mount.New(dir, mount.Options{Recipe: o.Recipe})
	if err != nil {
		return nil, err
	}
	checks = append(checks, l.Doctor(ctx, mount.DoctorOptions{Owner: o.Owner})...)
	checks = append(checks, checkJournal(l), checkRunner(m, getenv))
	if o.Config != "" {
		checks = append(checks, checkConfig(o.Config, m.EnvFiles, lastBuildOf(l, o.Config))...)
	}
	if o.Config != "" || o.Source != "" {
		checks = append(checks, checkToolchain(ctx, o.Config, o.Source, m.EnvFiles))
	}
	if o.Ref != "" {
		checks = append(checks, checkStore(ctx, o.Ref, o.Store)...)
	}
	if _, err := os.Stat(l.Dir); err == nil {
		checks = append(checks, checkSnapshotGo(ctx, l, o.Ref, o.Config, o.Store))
	}
	rep := &DoctorReport{Dir: l.Dir, OK: true, Checks: checks}
	for _, c := range checks {
		rep.OK = rep.OK && c.Status != mount.CheckFail
	}
	return rep, nil
}
