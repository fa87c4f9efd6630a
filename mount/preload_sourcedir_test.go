package mount_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/mount"
)

// TestPreloadSourceDir resolves a config's sources as melange does: a
// git-checkout of a relative local path is relative to --source-dir
// (SourceDir), else to the config's directory, never to the working
// directory; without a git-checkout the sources are SourceDir itself.
func TestPreloadSourceDir(t *testing.T) {
	repo, commit := gitRepo(t, nil) // .../hello-repo
	srcDir := filepath.Dir(repo)
	cfg := filepath.Join(t.TempDir(), "hello.yaml")
	write(t, cfg, strings.NewReplacer("REPO", "./"+filepath.Base(repo), "COMMIT", commit).Replace(configTemplate))
	t.Chdir(t.TempDir()) // neither the config's dir nor the source dir
	ctx := context.Background()

	l := newLayout(t)
	res, err := l.Preload(ctx, mount.PreloadOptions{Config: cfg, SourceDir: srcDir, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checkout == nil || res.Checkout.Commit != commit {
		t.Errorf("checkout %+v, want %s at %s", res.Checkout, repo, commit)
	}
	// Without SourceDir the relative repository is looked up next to the
	// config, where there is none: the error names the config's dir.
	_, err = l.Preload(ctx, mount.PreloadOptions{Config: cfg, Env: preloadEnv(t)})
	if want := filepath.Join(filepath.Dir(cfg), filepath.Base(repo)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("no SourceDir: error %v, want one naming %s", err, want)
	}

	// No git-checkout: the modules of SourceDir, not of the config's dir.
	plain := filepath.Join(t.TempDir(), "plain.yaml")
	write(t, plain, "package:\n  name: hello\n  version: 1.2.3\npipeline:\n  - runs: echo\n")
	res, err = l.Preload(ctx, mount.PreloadOptions{Config: plain, SourceDir: repo, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Modules) != 1 || res.Modules[0].Path != "example.com/hello" {
		t.Errorf("modules %+v, want example.com/hello from %s", res.Modules, repo)
	}
}
