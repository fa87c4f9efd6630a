package mount

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/melcache/melcache/envinject"
)

// ErrNoSource is returned by CheckToolchain when a config fetches its
// sources with git-checkout and no local source tree was given: the check
// does not clone (doctor stays offline).
var ErrNoSource = errors.New("the config fetches its sources with git-checkout; give --source DIR to check its go.mod")

// CheckToolchain runs Preload's toolchain check alone, downloading and
// cloning nothing: each go.mod's (and go.work's) go line against the local
// Go when GOTOOLCHAIN=local applies (in o.Env or the config's environment),
// and against the Go package the config installs. It returns nil when the
// build's Go can build the sources, a *ToolchainError (wrapped) when it
// cannot. The sources are o.Source, or the config's directory when the
// config has no git-checkout step (ErrNoSource otherwise).
func CheckToolchain(ctx context.Context, o PreloadOptions) error {
	p := newPreloader(o)
	var src preloadSource
	if o.Config != "" {
		cfg, err := envinject.ReadConfig(o.Config)
		if err != nil {
			return err
		}
		p.cfgEnv = cfg.Environment
		src.setBuildGo(cfg)
		if o.Source == "" {
			for _, s := range cfg.BuildSteps() {
				if s.Uses == "git-checkout" {
					return fmt.Errorf("%s:%d: %w", o.Config, s.Line, ErrNoSource)
				}
			}
			o.Source = filepath.Dir(o.Config)
		}
	}
	if o.Source == "" {
		return errors.New("toolchain check: give a source directory or a melange config")
	}
	abs, err := filepath.Abs(o.Source)
	if err != nil {
		return err
	}
	src.root, src.label = abs, o.Source
	if src.modDirs, err = findModules(abs); err != nil {
		return err
	}
	mods, err := readModules(src)
	if err != nil {
		return err
	}
	return p.checkToolchains(ctx, src, mods)
}
