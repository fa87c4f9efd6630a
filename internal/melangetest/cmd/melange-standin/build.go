package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// guest paths (pkg/container/config.go DefaultWorkspaceDir, DefaultCacheDir).
const (
	guestWorkspace = "/home/build"
	guestCache     = "/var/cache/melange"
	outputDirName  = "melange-out"
)

// build runs one `melange build`.
func build(ctx context.Context, o buildOptions, log io.Writer) error {
	arch := hostArch()
	cfg, err := loadConfig(o.config, o.envFiles)
	if err != nil {
		return err
	}
	logf(log, "INFO", "melange-standin is building:")
	logf(log, "INFO", "  configuration file: %s", o.config)

	ws, cleanup, err := workspace(o, arch)
	if err != nil {
		return err
	}
	defer cleanup()
	logf(log, "INFO", "  workspace dir: %s", ws)

	sb, err := newSandbox(ctx, o, cfg, ws, log)
	if err != nil {
		return err
	}

	if !o.emptyWorkspace {
		if err := populateWorkspace(o, ws, log); err != nil {
			return fmt.Errorf("failed to build package: populating workspace: %w", err)
		}
	}
	// pkg/build/build.go creates melange-out/<name> for the package and each
	// subpackage before running the pipelines.
	names := []string{cfg.Package.Name}
	for _, sp := range cfg.Subpackages {
		names = append(names, sp.Name)
	}
	for _, n := range names {
		if err := os.MkdirAll(filepath.Join(ws, outputDirName, n), 0o755); err != nil {
			return fmt.Errorf("failed to build package: %w", err)
		}
	}

	r := &pipelineRunner{sb: sb, cfg: cfg, arch: arch, ws: ws, log: log, debug: o.debug}
	if err := r.runPipelines(ctx, cfg.Pipeline, cfg.Package.Name); err != nil {
		return fmt.Errorf("failed to build package: %w", err)
	}
	for _, sp := range cfg.Subpackages {
		logf(log, "INFO", "running pipeline for subpackage %s", sp.Name)
		if err := r.runPipelines(ctx, sp.Pipeline, sp.Name); err != nil {
			return fmt.Errorf("failed to build package: %w", err)
		}
	}
	// The stand-in writes no APK: the outputs stay in the workspace.
	logf(log, "INFO", "stand-in: packaging skipped; outputs in %s", filepath.Join(ws, outputDirName))
	return nil
}

// workspace returns the host directory mounted at /home/build
// (pkg/build/build.go: --workspace-dir DIR means DIR/<arch>; without it a
// fresh melange-workspace-* temp dir, deleted afterwards when --rm).
func workspace(o buildOptions, arch string) (string, func(), error) {
	if o.workspaceDir != "" {
		ws, err := filepath.Abs(filepath.Join(o.workspaceDir, arch))
		if err != nil {
			return "", nil, fmt.Errorf("unable to resolve path %s: %w", o.workspaceDir, err)
		}
		if err := os.MkdirAll(ws, 0o755); err != nil {
			return "", nil, fmt.Errorf("unable to create workspace dir: %w", err)
		}
		return ws, func() {}, nil
	}
	ws, err := os.MkdirTemp("", "melange-workspace-*")
	if err != nil {
		return "", nil, fmt.Errorf("unable to create workspace dir: %w", err)
	}
	return ws, func() {
		if o.remove {
			removeAll(ws)
		}
	}, nil
}

// populateWorkspace copies the regular files of the source dir into the
// workspace, honouring .melangeignore (pkg/build/build.go populateWorkspace).
// Deviation: the workspace and cache dir themselves are skipped when they lie
// inside the source dir, so a cache next to the config is not copied into
// every build.
func populateWorkspace(o buildOptions, ws string, log io.Writer) error {
	src, err := filepath.Abs(o.sourceDir)
	if err != nil {
		return err
	}
	skip := map[string]bool{ws: true}
	if o.workspaceDir != "" {
		if p, err := filepath.Abs(o.workspaceDir); err == nil {
			skip[p] = true
		}
	}
	if p, err := filepath.Abs(o.cacheDir); err == nil {
		skip[p] = true
	}
	ignore := loadIgnore(filepath.Join(src, ".melangeignore"))
	logf(log, "INFO", "populating workspace %s from %s", ws, src)
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && skip[p] {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && ignored(ignore, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return copyFile(p, filepath.Join(ws, rel), fi.Mode().Perm())
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("mkdir -p %s: %w", filepath.Dir(dst), err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm)
}

// loadIgnore reads .melangeignore patterns (one glob per line).
func loadIgnore(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var pats []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			pats = append(pats, strings.Trim(l, "/"))
		}
	}
	return pats
}

func ignored(pats []string, rel string) bool {
	for _, p := range pats {
		if ok, _ := filepath.Match(p, rel); ok {
			return true
		}
		if ok, _ := filepath.Match(p, filepath.Base(rel)); ok {
			return true
		}
	}
	return false
}

// removeAll removes p, making read-only directories (module cache trees are
// 0555) writable first.
func removeAll(p string) {
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(p)
}
