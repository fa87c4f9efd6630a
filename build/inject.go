package build

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/mount"
)

// envFileName is the env-file Run writes in its temporary directory.
const envFileName = "melcache.env"

// inject points the build at the caches. It returns the config path to give
// melange and extra melange arguments.
//
// Default: an env-file in a temporary directory (--env-file). It goes first,
// so env-files the user passes after -- win over it, as later files do in
// melange.
//
// Rewrite: a rewritten copy of the config in a temporary directory, with
// --source-dir set to the original config's directory (melange's default for
// it) unless the user gave one. The copy is not put next to the original:
// melange would copy it into the workspace with the sources, and the user's
// directory is left exactly as it was.
func (b *run) inject() (config string, extra []string, err error) {
	set := append(b.cacheProgVars(), b.cfg.Set...) // the user's --set wins
	opts := envinject.Options{Offline: b.cfg.Offline, Force: b.cfg.Force, Set: set}
	vars, err := envinject.DefaultVars(opts)
	if err != nil {
		return "", nil, &UsageError{Err: err}
	}
	final, envVars := b.src, vars
	b.record = mount.BuildRecord{Config: absPath(b.cfg.Config), Rewrite: b.cfg.Rewrite,
		Offline: b.cfg.Offline, Force: b.cfg.Force}
	for _, v := range b.cfg.Set {
		b.record.Set = append(b.record.Set, v.String())
	}
	for _, f := range b.cfg.MelangeArgs.EnvFiles {
		b.record.UserEnvFiles = append(b.record.UserEnvFiles, absPath(f))
	}
	if b.cfg.Rewrite {
		res, err := envinject.Inject(b.src, opts)
		if err != nil {
			return "", nil, configError(b.cfg.Config, err)
		}
		final, envVars = res.Out, nil
		config = filepath.Join(b.tmp, filepath.Base(b.cfg.Config))
		if err := os.WriteFile(config, res.Out, 0o644); err != nil {
			return "", nil, err
		}
		if b.cfg.MelangeArgs.SourceDir == "" {
			extra = append(extra, "--source-dir", filepath.Dir(absPath(b.cfg.Config)))
		}
	} else {
		config = b.cfg.Config
		envFile := filepath.Join(b.tmp, envFileName)
		if err := writeEnvFile(envFile, vars); err != nil {
			return "", nil, err
		}
		extra = append(extra, "--env-file", envFile)
		b.record.EnvFile = envFile
		for _, v := range vars {
			b.record.EnvVars = append(b.record.EnvVars, v.String())
		}
	}
	caches, err := envinject.EffectiveCaches(final, envVars)
	if err != nil {
		return "", nil, configError(b.cfg.Config, err)
	}
	b.report.GoModCache, b.report.GoCache = caches.GoModCache.Value, caches.GoCache.Value
	if !b.injected { // again without cacheprog: warned once already
		b.checkCaches(caches)
	}
	b.injected = true
	return config, extra, nil
}

func writeEnvFile(path string, vars []envinject.Var) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	err = envinject.WriteEnvFile(fh, vars)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("env-file %s: %w", path, err)
	}
	return nil
}

// checkCaches warns when the YAML's own environment makes the build use
// other caches than melcache's: melange lets the YAML win over env-files.
func (b *run) checkCaches(c envinject.Caches) {
	for _, x := range []struct {
		key  string
		s    envinject.Setting
		want string
	}{
		{"GOMODCACHE", c.GoModCache, envinject.DefaultGoModCache},
		{"GOCACHE", c.GoCache, envinject.DefaultGoCache},
	} {
		if x.s.Value == x.want || x.s.From != envinject.FromYAML {
			continue
		}
		msg := fmt.Sprintf("%s:%d:%d: the config sets %s=%s, which wins over melcache's %s", b.cfg.Config, x.s.Line, x.s.Col, x.key, x.s.Value, x.want)
		if x.key == "GOMODCACHE" && c.GoBuildSteps {
			msg += fmt.Sprintf("; go/build steps still use %s (they export it), runs: steps use %s", x.want, x.s.Value)
		} else {
			msg += fmt.Sprintf("; this build uses %s", x.s.Value)
		}
		if !x.s.Persists {
			msg += ", which melange throws away with the workspace"
		}
		msg += "; --rewrite --force overrides it for this build"
		b.warn(msg)
	}
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
