package mount_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// preloadEnv is the environment of preload in tests: modules only from the
// test module's file:// proxy, no checksum database, the local toolchain.
func preloadEnv(t testing.TB, extra ...string) []string {
	t.Helper()
	return melangetest.OfflineEnv(melangetest.FileProxy(t), filepath.Join(t.TempDir(), "unused-modcache"), extra...)
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	env := append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	return strings.TrimSpace(string(melangetest.Run(t, dir, env, "git", args...)))
}

// gitRepo makes a git repository holding the test module (with edit applied
// to its files first), tagged v1.2.3, and returns its path and commit.
func gitRepo(t testing.TB, edit func(dir string)) (string, string) {
	t.Helper()
	repo := melangetest.CopyModule(t, filepath.Join(testenv.TempDir(t), "hello-repo"))
	if edit != nil {
		edit(repo)
	}
	git(t, repo, "init", "--quiet", "--initial-branch=main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "--quiet", "-m", "hello")
	git(t, repo, "tag", "v1.2.3")
	return repo, git(t, repo, "rev-parse", "HEAD")
}

const configTemplate = `package:
  name: hello
  version: 1.2.3
  epoch: 0
environment:
  contents:
    packages:
      - go-1.26
      - busybox
pipeline:
  - uses: git-checkout
    with:
      repository: REPO
      tag: v${{package.version}}
      expected-commit: COMMIT
  - uses: go/build
    with:
      packages: ./cmd/hello
      output: hello
`

func writeConfig(t testing.TB, repo, commit string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "hello.yaml")
	write(t, cfg, strings.NewReplacer("REPO", repo, "COMMIT", commit).Replace(configTemplate))
	return cfg
}

func newLayout(t testing.TB) mount.Layout {
	t.Helper()
	l, err := mount.New(filepath.Join(testenv.TempDir(t), "cache"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestPreloadConfigThenOfflineBuild preloads from a config whose
// git-checkout points at a local repository, then builds the module with no
// network at all from the preloaded module cache.
func TestPreloadConfigThenOfflineBuild(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (preload, then a real offline Go build)")
	repo, commit := gitRepo(t, nil)
	cfg := writeConfig(t, repo, commit)
	l := newLayout(t) // the cache dir does not exist yet: Preload creates it
	ctx := context.Background()
	res, err := l.Preload(ctx, mount.PreloadOptions{Config: cfg, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checkout == nil || res.Checkout.Commit != commit || res.Checkout.Ref != "v1.2.3" {
		t.Errorf("checkout %+v, want v1.2.3 at %s", res.Checkout, commit)
	}
	if len(res.Modules) != 1 || res.Modules[0].Path != "example.com/hello" || res.Modules[0].Dir != "." {
		t.Fatalf("modules %+v, want example.com/hello at .", res.Modules)
	}
	if m := res.Modules[0]; m.Modules < 3 || m.New != m.Modules {
		t.Errorf("first preload: %d modules, %d new; want at least cobra, pflag and x/mod, all new", m.Modules, m.New)
	}

	// The offline build: a fresh checkout, no proxy, no checksum database,
	// the local toolchain, only the preloaded module cache.
	build := filepath.Join(testenv.TempDir(t), "build")
	git(t, "", "clone", "--quiet", repo, build)
	// GOCACHE stays the test runner's: compiling is not what this checks.
	env := melangetest.OfflineEnv("off", l.CacheDir(mount.GoModCache))
	melangetest.Run(t, build, env, "go", "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "hello"), "./cmd/hello")

	// Preloading again downloads nothing.
	res, err = l.Preload(ctx, mount.PreloadOptions{Config: cfg, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Modules[0]; m.New != 0 || m.Modules < 3 {
		t.Errorf("second preload: %d modules, %d new; want all cached, none new", m.Modules, m.New)
	}
}

// TestPreloadTooNewGo checks the early, clear message for a go line the
// local Go cannot satisfy under GOTOOLCHAIN=local, from the environment or
// from the config, before anything is downloaded.
func TestPreloadTooNewGo(t *testing.T) {
	repo, commit := gitRepo(t, func(dir string) {
		b, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
		write(t, filepath.Join(dir, "go.mod"), strings.Replace(string(b), "go 1.26.0", "go 1.99", 1))
	})
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	local := strings.TrimSpace(string(out))

	t.Run("env", func(t *testing.T) {
		l := newLayout(t)
		_, err := l.Preload(context.Background(), mount.PreloadOptions{Config: writeConfig(t, repo, commit), Env: preloadEnv(t)})
		want := repo + "@v1.2.3:go.mod:3: go 1.99 is newer than the local Go (" + local + "), and GOTOOLCHAIN=local forbids switching toolchains"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v\nwant it to contain %q", err, want)
		}
		var te *mount.ToolchainError
		if !errors.As(err, &te) || te.Line != 3 || te.Needs != "1.99" {
			t.Errorf("error %#v is not a *mount.ToolchainError for line 3, go 1.99", err)
		}
		assertNoDownloads(t, l)
	})
	t.Run("config-env", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "src")
		git(t, "", "clone", "--quiet", repo, src)
		write(t, filepath.Join(src, "melange.yaml"), "package:\n  name: hello\n  version: 1.2.3\nenvironment:\n  environment:\n    GOTOOLCHAIN: local\npipeline:\n  - uses: go/build\n    with:\n      packages: ./cmd/hello\n      output: hello\n")
		l := newLayout(t)
		_, err := l.Preload(context.Background(), mount.PreloadOptions{Config: filepath.Join(src, "melange.yaml"),
			Env: preloadEnv(t, "GOTOOLCHAIN=auto")})
		want := filepath.Join(src, "go.mod") + ":3: go 1.99 is newer than the local Go (" + local + "), and the config sets GOTOOLCHAIN=local"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v\nwant it to contain %q", err, want)
		}
		assertNoDownloads(t, l)
	})
	t.Run("config-go-package", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "src")
		git(t, "", "clone", "--quiet", repo, src)
		write(t, filepath.Join(src, "melange.yaml"), "package:\n  name: hello\n  version: 1.2.3\nenvironment:\n  contents:\n    packages: [go-1.26]\npipeline:\n  - uses: go/build\n    with:\n      packages: ./cmd/hello\n      output: hello\n")
		l := newLayout(t)
		_, err := l.Preload(context.Background(), mount.PreloadOptions{Config: filepath.Join(src, "melange.yaml"),
			Env: preloadEnv(t, "GOTOOLCHAIN=auto")})
		want := "go.mod:3: go 1.99 is newer than the config's Go package (go-1.26)"
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "install go-1.99") {
			t.Fatalf("error %v\nwant it to contain %q and the fix", err, want)
		}
	})
}

func assertNoDownloads(t testing.TB, l mount.Layout) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(l.CacheDir(mount.GoModCache), "cache", "download")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("something was downloaded before the toolchain check failed (%v)", err)
	}
}

// TestPreloadSourceTree preloads every go.mod of a tree, reports a vendored
// module without downloading for it, and leaves the tree's files as they
// were, even a module with no go.sum.
func TestPreloadSourceTree(t *testing.T) {
	root := testenv.TempDir(t)
	melangetest.CopyModule(t, filepath.Join(root, "hello"))
	melangetest.CopyModule(t, filepath.Join(root, "nosum"))
	if err := os.Remove(filepath.Join(root, "nosum", "go.sum")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "vend", "go.mod"), "module example.com/vend\n\ngo 1.26.0\n")
	write(t, filepath.Join(root, "vend", "vendor", "modules.txt"), "")
	write(t, filepath.Join(root, "hello", "testdata", "ignored", "go.mod"), "module example.com/ignored\n\ngo 1.99\n")
	before := snapshotTree(t, root)

	l := newLayout(t)
	res, err := l.Preload(context.Background(), mount.PreloadOptions{Source: root, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Modules {
		s := m.Dir + "=" + m.Path
		if m.Vendored {
			s += " vendored"
		}
		got = append(got, s)
	}
	if want := "hello=example.com/hello nosum=example.com/hello vend=example.com/vend vendored"; strings.Join(got, " ") != want {
		t.Errorf("modules %q, want %q", strings.Join(got, " "), want)
	}
	if after := snapshotTree(t, root); after != before {
		t.Errorf("preload changed the source tree:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestPreloadWorkspace preloads the modules a go.work uses.
func TestPreloadWorkspace(t *testing.T) {
	root := testenv.TempDir(t)
	melangetest.CopyModule(t, filepath.Join(root, "a"))
	write(t, filepath.Join(root, "b", "go.mod"), "module example.com/b\n\ngo 1.26.0\n")
	write(t, filepath.Join(root, "unused", "go.mod"), "module example.com/unused\n\ngo 1.26.0\n")
	write(t, filepath.Join(root, "go.work"), "go 1.26.0\n\nuse (\n\t./a\n\t./b\n)\n")
	l := newLayout(t)
	res, err := l.Preload(context.Background(), mount.PreloadOptions{Source: root, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Modules) != 2 || res.Modules[0].Path != "example.com/hello" || res.Modules[1].Path != "example.com/b" {
		t.Errorf("modules %+v, want a and b from go.work", res.Modules)
	}
}

// TestPreloadConfigErrors checks that bad input names the file and line.
func TestPreloadConfigErrors(t *testing.T) {
	repo, commit := gitRepo(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name, config, want string
	}{
		{"bad-yaml", "package:\n  name: x\npipeline:\n  - uses: [git-checkout]\n", ":4:3: cannot unmarshal !!seq into string"},
		{"wrong-commit", strings.NewReplacer("REPO", repo, "COMMIT", strings.Repeat("0", 40)).Replace(configTemplate),
			":11: git-checkout: expected commit " + strings.Repeat("0", 40) + " for v1.2.3, found " + commit},
		{"no-tag", strings.NewReplacer("REPO", repo, "COMMIT", commit, "v${{package.version}}", "v9").Replace(configTemplate),
			":11: git-checkout of " + repo + ": git clone: "},
		{"undefined-var", strings.NewReplacer("REPO", repo, "COMMIT", commit, "package.version", "vars.nope").Replace(configTemplate),
			":11: git-checkout tag: variable vars.nope not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "c.yaml")
			write(t, cfg, tc.config)
			_, err := newLayout(t).Preload(ctx, mount.PreloadOptions{Config: cfg, Env: preloadEnv(t)})
			if err == nil || !strings.Contains(err.Error(), cfg+tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, cfg+tc.want)
			}
		})
	}
}

// snapshotTree lists every file of root with its size and content digest.
func snapshotTree(t testing.TB, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			b.WriteString(rel + "/\n")
			return nil
		}
		c, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b.WriteString(rel + " " + strconv.Itoa(len(c)) + " " + string(c) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
