package mount_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/mount"
)

// goPackageConfig is a melange config that builds its own directory and
// installs the Go package pkg.
func goPackageConfig(pkg string) string {
	return "package:\n  name: hello\n  version: 1.2.3\nenvironment:\n  contents:\n    packages:\n      - busybox\n      - \"" + pkg + "\"\n" +
		"pipeline:\n  - uses: go/build\n    with:\n      packages: .\n      output: hello\n"
}

// TestCheckToolchainGoPackageForms: doctor's toolchain check knows the Go
// version of every pinned Go package form (go-1.26=1.26.0-r0 was ignored
// before melange YAML had one reader), and a package that pins none
// checks nothing.
func TestCheckToolchainGoPackageForms(t *testing.T) {
	for _, tc := range []struct {
		pkg    string
		pinned bool
	}{
		{"go-1.26", true},
		{"go-1.26=1.26.0-r0", true},
		{"go~1.26", true},
		{"go=1.26.8-r0", true},
		{"go-1.26>=1.26.2", true},
		{"go", false},
		{"go>=1.25", false},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "go.mod"), "module example.com/hello\n\ngo 1.99\n")
			write(t, filepath.Join(dir, "melange.yaml"), goPackageConfig(tc.pkg))
			err := mount.CheckToolchain(context.Background(), mount.PreloadOptions{
				Config: filepath.Join(dir, "melange.yaml"), Env: []string{"GOTOOLCHAIN=auto"}})
			if !tc.pinned {
				if err != nil {
					t.Fatalf("CheckToolchain: %v, want nil: %s pins no Go version", err, tc.pkg)
				}
				return
			}
			want := "go.mod:3: go 1.99 is newer than the config's Go package (" + tc.pkg + ")"
			var te *mount.ToolchainError
			if !errors.As(err, &te) || te.Needs != "1.99" || !strings.Contains(err.Error(), want) {
				t.Fatalf("CheckToolchain: %v\nwant a *mount.ToolchainError containing %q", err, want)
			}
		})
	}
	// A go line the pinned package satisfies passes.
	dir := t.TempDir()
	write(t, filepath.Join(dir, "go.mod"), "module example.com/hello\n\ngo 1.26.3\n")
	write(t, filepath.Join(dir, "melange.yaml"), goPackageConfig("go-1.26=1.26.0-r0"))
	if err := mount.CheckToolchain(context.Background(), mount.PreloadOptions{
		Config: filepath.Join(dir, "melange.yaml"), Env: []string{"GOTOOLCHAIN=auto"}}); err != nil {
		t.Errorf("go 1.26.3 with go-1.26=1.26.0-r0: %v", err)
	}
}

// TestPreloadPinnedGoPackage: preload refuses, before downloading anything,
// a go line newer than a config's go-1.26=1.26.0-r0.
func TestPreloadPinnedGoPackage(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "go.mod"), "module example.com/hello\n\ngo 1.99\n")
	write(t, filepath.Join(dir, "melange.yaml"), goPackageConfig("go-1.26=1.26.0-r0"))
	l := newLayout(t)
	_, err := l.Preload(context.Background(), mount.PreloadOptions{Config: filepath.Join(dir, "melange.yaml"),
		Env: preloadEnv(t, "GOTOOLCHAIN=auto")})
	want := "go.mod:3: go 1.99 is newer than the config's Go package (go-1.26=1.26.0-r0)"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "install go-1.99") {
		t.Fatalf("error %v\nwant it to contain %q and the fix", err, want)
	}
	assertNoDownloads(t, l)
}
