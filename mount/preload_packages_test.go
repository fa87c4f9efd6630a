package mount_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// The test module's dependencies (internal/melangetest/testdata/hello):
// ./internal/greet imports only x/mod; ./cmd/hello adds cobra, which needs
// pflag, and mousetrap only on windows.
var (
	xmodZip      = "cache/download/golang.org/x/mod/@v/v0.42.0.zip"
	cobraZip     = "cache/download/github.com/spf13/cobra/@v/v1.10.2.zip"
	pflagZip     = "cache/download/github.com/spf13/pflag/@v/v1.0.9.zip"
	mousetrapZip = "cache/download/github.com/inconshreveable/mousetrap/@v/v1.1.0.zip"
)

// sourceConfig is a config building the directory it sits in (no
// git-checkout) with one go/build step and the given extra steps.
func sourceConfig(t testing.TB, dir, packages, extra string) string {
	t.Helper()
	cfg := filepath.Join(dir, "melange.yaml")
	write(t, cfg, `package:
  name: hello
  version: 1.2.3
  epoch: 0
vars:
  pkg: `+packages+`
pipeline:
  - uses: go/build
    with:
      packages: ${{vars.pkg}}
      tags: netgo,osusergo
      output: hello
`+extra)
	return cfg
}

func exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// TestPreloadConfigPackagesOnly checks that a config's go/build packages
// narrow the download to the modules those packages import: building
// ./internal/greet needs x/mod, not cobra or pflag (which `go mod download`,
// the --source behaviour, fetches), and the no-network build still succeeds.
func TestPreloadConfigPackagesOnly(t *testing.T) {
	src := melangetest.CopyModule(t, filepath.Join(testenv.TempDir(t), "hello"))
	cfg := sourceConfig(t, src, "./internal/greet", "")
	before := snapshotTree(t, src)
	l := newLayout(t)
	ctx := context.Background()
	res, err := l.Preload(ctx, mount.PreloadOptions{Config: cfg, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Modules) != 1 {
		t.Fatalf("modules %+v, want one", res.Modules)
	}
	if m := res.Modules[0]; m.Modules != 1 || m.New != 1 || strings.Join(m.Packages, " ") != "./internal/greet" {
		t.Errorf("preload: %d modules, %d new, packages %q; want x/mod only, new, for ./internal/greet", m.Modules, m.New, m.Packages)
	}
	mc := l.CacheDir(mount.GoModCache)
	if !exists(t, filepath.Join(mc, xmodZip)) {
		t.Errorf("%s missing: ./internal/greet imports x/mod", xmodZip)
	}
	for _, z := range []string{cobraZip, pflagZip, mousetrapZip} {
		if exists(t, filepath.Join(mc, z)) {
			t.Errorf("%s downloaded, but ./internal/greet does not import it", z)
		}
	}
	if after := snapshotTree(t, src); after != before {
		t.Errorf("preload changed the source tree:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	env := melangetest.OfflineEnv("off", mc)
	melangetest.Run(t, src, env, "go", "build", "-trimpath", "-tags", "netgo,osusergo", "./internal/greet")

	// The same module through --source gets every module of go.mod.
	whole := newLayout(t)
	res, err = whole.Preload(ctx, mount.PreloadOptions{Source: src, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Modules[0]; m.Modules < 4 || len(m.Packages) != 0 {
		t.Errorf("--source preload: %d modules, packages %q; want all four, no packages", m.Modules, m.Packages)
	}
	if !exists(t, filepath.Join(whole.CacheDir(mount.GoModCache), cobraZip)) {
		t.Errorf("--source preload: %s missing", cobraZip)
	}
}

// TestPreloadConfigCommandPackage checks the program's package: cobra and
// pflag are fetched, mousetrap (imported on windows only) is not, and the
// no-network build of the program succeeds.
func TestPreloadConfigCommandPackage(t *testing.T) {
	src := melangetest.CopyModule(t, filepath.Join(testenv.TempDir(t), "hello"))
	cfg := sourceConfig(t, src, "./cmd/hello", "")
	l := newLayout(t)
	res, err := l.Preload(context.Background(), mount.PreloadOptions{Config: cfg, Env: preloadEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Modules[0]; m.Modules != 3 || len(m.Packages) != 1 {
		t.Errorf("preload: %d modules, packages %q; want cobra, pflag and x/mod for ./cmd/hello", m.Modules, m.Packages)
	}
	mc := l.CacheDir(mount.GoModCache)
	for _, z := range []string{xmodZip, cobraZip, pflagZip} {
		if !exists(t, filepath.Join(mc, z)) {
			t.Errorf("%s missing", z)
		}
	}
	if exists(t, filepath.Join(mc, mousetrapZip)) {
		t.Errorf("%s downloaded, but only windows builds import it", mousetrapZip)
	}
	env := melangetest.OfflineEnv("off", mc)
	melangetest.Run(t, src, env, "go", "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "hello"), "./cmd/hello")
}

// TestPreloadConfigFallsBack checks the cases where the packages a build
// compiles are not known from the go/build step: then every module of
// go.mod is downloaded, as `go mod download` does.
func TestPreloadConfigFallsBack(t *testing.T) {
	for _, tc := range []struct{ name, packages, extra string }{
		{"runs-go", "./internal/greet", "  - runs: |\n      go generate ./...\n"},
		{"runs-make", "./internal/greet", "  - runs: make -C tools\n"},
		{"shell-glob", "./cmd/*", ""},
		{"list-error", "./no/such/package", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := melangetest.CopyModule(t, filepath.Join(testenv.TempDir(t), "hello"))
			cfg := sourceConfig(t, src, tc.packages, tc.extra)
			l := newLayout(t)
			res, err := l.Preload(context.Background(), mount.PreloadOptions{Config: cfg, Env: preloadEnv(t)})
			if err != nil {
				t.Fatal(err)
			}
			if m := res.Modules[0]; m.Modules < 4 || len(m.Packages) != 0 {
				t.Errorf("preload: %d modules, packages %q; want every module of go.mod", m.Modules, m.Packages)
			}
			if !exists(t, filepath.Join(l.CacheDir(mount.GoModCache), cobraZip)) {
				t.Errorf("%s missing", cobraZip)
			}
		})
	}
}
