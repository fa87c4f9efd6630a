package build

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/mount"
)

// readEnvFiles reads melange --env-file files (KEY=VALUE lines, # comments).
func readEnvFiles(paths []string) ([]envinject.Var, error) {
	var out []envinject.Var
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		n := 0
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			v, err := envinject.ParseVar(line)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s:%d: %w", p, n, err)
			}
			out = append(out, v)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return out, nil
}

// malformedConfig returns the *envinject.Error (file:line:col) of a config
// that does not parse as YAML, nil for "" and for one that does. Doctor
// fails on it as on other input it cannot check; an unreadable file or
// YAML that is not a melange config stays a failed check.
func malformedConfig(path string) error {
	if path == "" {
		return nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var pe *envinject.Error
	if _, err := envinject.EffectiveCaches(src, nil); errors.As(err, &pe) {
		return configError(path, err)
	}
	return nil
}

// checkConfig reports the caches a build of the config really uses (YAML
// over --env-file over melange's and Go's defaults) and inject's findings.
// With rec, the record of the last `melcache build` of this config, the
// config is evaluated as that build ran it: with its env-file (the YAML
// still wins over it) or its rewritten copy, then the user's env-files.
func checkConfig(path string, envFiles []string, rec *mount.BuildRecord) []check {
	src, err := os.ReadFile(path)
	if err != nil {
		return []check{{Name: "config", Status: mount.CheckFail, Message: err.Error(), Fix: "give --config a readable melange YAML"}}
	}
	var out []check
	final, pre := src, []envinject.Var(nil)
	if rec != nil {
		envFiles = append(append([]string(nil), rec.UserEnvFiles...), envFiles...)
		if final, pre, err = asBuilt(src, rec); err != nil {
			return []check{{Name: "config", Status: mount.CheckFail, Message: fmt.Sprintf("%s: %v", path, err), Fix: "fix the YAML"}}
		}
		how := "its env-file " + strings.Join(rec.EnvVars, " ") + ", which the YAML's environment overrides"
		if rec.Rewrite {
			how = "a rewritten copy (--rewrite)"
		}
		out = append(out, check{Name: "config", Status: mount.CheckPass,
			Message: fmt.Sprintf("evaluated as melcache build ran it at %s: %s", rec.Time.UTC().Format("2006-01-02T15:04:05Z"), how)})
	}
	vars, err := readEnvFiles(envFiles)
	if err != nil {
		return []check{{Name: "config", Status: mount.CheckFail, Message: err.Error(), Fix: "fix the --env-file"}}
	}
	c, err := envinject.EffectiveCaches(final, append(pre, vars...))
	if err != nil {
		return []check{{Name: "config", Status: mount.CheckFail, Message: fmt.Sprintf("%s: %v", path, err), Fix: "fix the YAML"}}
	}
	injectFix := "melcache inject -w " + path + " (or melcache inject --env-file FILE " + path + " and pass melange --env-file FILE)"
	if rec != nil {
		injectFix = "the YAML's environment wins over melcache build's env-file: melcache build --rewrite --force " + path + ", or remove the setting from the YAML"
	}
	for _, s := range []struct {
		name string
		set  envinject.Setting
	}{{"GOMODCACHE", c.GoModCache}, {"GOCACHE", c.GoCache}} {
		where := s.set.From
		switch {
		case s.set.From == envinject.FromYAML && rec != nil && rec.Rewrite:
			where = "melcache build's rewritten copy of " + path
		case s.set.From == envinject.FromYAML:
			where = fmt.Sprintf("%s:%d:%d", path, s.set.Line, s.set.Col)
		}
		msg := fmt.Sprintf("%s=%s (from %s)", s.name, s.set.Value, where)
		if !s.set.Persists {
			out = append(out, check{Name: "config", Status: mount.CheckFail,
				Message: msg + ": not under " + envinject.GuestRoot + ", so it is thrown away with the build workspace", Fix: injectFix})
			continue
		}
		out = append(out, check{Name: "config", Status: mount.CheckPass, Message: msg})
	}
	res, err := envinject.Inject(src, envinject.Options{})
	if err == nil {
		for _, f := range res.Findings {
			out = append(out, check{Name: "config", Status: mount.CheckWarn,
				Message: fmt.Sprintf("%s:%d:%d: %s", path, f.Line, f.Col, f.Msg), Fix: f.Fix})
		}
	}
	return out
}

// asBuilt returns the config and the env-file variables melange got from
// the build rec records.
func asBuilt(src []byte, rec *mount.BuildRecord) ([]byte, []envinject.Var, error) {
	if !rec.Rewrite {
		vars := make([]envinject.Var, 0, len(rec.EnvVars))
		for _, kv := range rec.EnvVars {
			v, err := envinject.ParseVar(kv)
			if err != nil {
				return nil, nil, fmt.Errorf("last build record: %w", err)
			}
			vars = append(vars, v)
		}
		return src, vars, nil
	}
	opts := envinject.Options{Offline: rec.Offline, Force: rec.Force}
	for _, kv := range rec.Set {
		v, err := envinject.ParseVar(kv)
		if err != nil {
			return nil, nil, fmt.Errorf("last build record: %w", err)
		}
		opts.Set = append(opts.Set, v)
	}
	res, err := envinject.Inject(src, opts)
	if err != nil {
		return nil, nil, err
	}
	return res.Out, nil, nil
}

// lastBuildOf returns the record of the last melcache build in l when it
// built config, else nil.
func lastBuildOf(l mount.Layout, config string) *mount.BuildRecord {
	rec, err := l.LastBuildRecord()
	if err != nil || rec == nil || rec.Config != absPath(config) {
		return nil
	}
	return rec
}

// checkToolchain compares go.mod's go line with the Go the build uses.
func checkToolchain(ctx context.Context, config, source string, envFiles []string) check {
	env := os.Environ()
	if vars, err := readEnvFiles(envFiles); err == nil {
		for _, v := range vars {
			env = append(env, v.Key+"="+v.Value)
		}
	}
	err := mount.CheckToolchain(ctx, mount.PreloadOptions{Config: config, Source: source, Env: env})
	var te *mount.ToolchainError
	switch {
	case err == nil:
		return check{Name: "toolchain", Status: mount.CheckPass, Message: "the build's Go satisfies every go.mod go line"}
	case errors.As(err, &te):
		return check{Name: "toolchain", Status: mount.CheckFail,
			Message: fmt.Sprintf("%s:%d: go %s is newer than %s, and %s: the build would fail", te.File, te.Line, te.Needs, te.Have, te.Why),
			Fix:     te.Solution}
	case errors.Is(err, mount.ErrNoSource):
		return check{Name: "toolchain", Status: mount.CheckSkip, Message: err.Error()}
	}
	return check{Name: "toolchain", Status: mount.CheckWarn, Message: err.Error()}
}
