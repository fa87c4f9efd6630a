package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/internal/testenv"
)

func TestExpandKey(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.sum"), []byte("x v1 h1:abc\n"), 0o644)
	cfg := filepath.Join(dir, "pkg.yaml")
	os.WriteFile(cfg, []byte("package:\n  name: x\nenvironment:\n  contents:\n    packages:\n      - build-base\n      - go-1.26=1.26.0-r1\n"), 0o644)
	got, err := ExpandKey("gocache/{arch}/{go}/{hash:go.sum}", KeyOptions{Arch: "aarch64", Config: cfg, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if want := "gocache-aarch64-1.26-" + sha([]byte("x v1 h1:abc\n"))[:16]; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, _ := ExpandKey(strings.Repeat("a", 200), KeyOptions{}); len(got) != 128 {
		t.Fatalf("not cut to 128: %d", len(got))
	}
	if got, _ := ExpandKey(".x y", KeyOptions{}); got != "_.x-y" {
		t.Fatalf("sanitise: %q", got)
	}
	for _, bad := range []string{"{go}", "{hash:nope}", "{nope}", "{hash}"} {
		if _, err := ExpandKey(bad, KeyOptions{Dir: dir}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := GoPackage(filepath.Join(dir, "nope.yaml")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestGoPackageCorpus reads the {go} package from real melange configs.
func TestGoPackageCorpus(t *testing.T) {
	corpus := testenv.Shared(t, "corpus/melange")
	files, _ := filepath.Glob(filepath.Join(corpus, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no melange configs in %s", corpus)
	}
	found := 0
	for _, f := range files {
		if p, err := GoPackage(f); err == nil {
			found++
			if g, ok := envinject.ParseGoPackage(p); !ok || g.Name != p {
				t.Errorf("%s: %q", f, p)
			}
		}
	}
	if found == 0 {
		t.Fatalf("no corpus file yields a go package")
	}
}

// Configs that get Go through melange's go/build pipeline name no Go package
// of their own: {go} is the pipeline's go-package input, "go" by default.
func TestGoPackageFromPipeline(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"package: {name: a}\nenvironment:\n  contents:\n    packages: [busybox, go-1.25]\npipeline:\n  - uses: go/build\n", "go-1.25"},
		{"package: {name: a}\npipeline:\n  - uses: go/build\n    with:\n      packages: .\n", "go"},
		{"package: {name: a}\npipeline:\n  - uses: go/build\n    with:\n      go-package: go-1.24\n", "go-1.24"},
		{"package: {name: a}\nsubpackages:\n  - name: b\n    pipeline:\n      - uses: go/install\n", "go"},
	} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := GoPackage(p)
		if err != nil || got != tc.want {
			t.Errorf("GoPackage(%q) = %q, %v; want %q", tc.yaml, got, err, tc.want)
		}
	}
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("package: {name: a}\npipeline:\n  - runs: make\n"), 0o644)
	if got, err := GoPackage(p); err == nil {
		t.Errorf("a config with no Go gave %q", got)
	}
}

// The corpus's go/build example names no Go package of its own: {go} comes
// from the pipeline.
func TestGoPackageFromPipelineCorpus(t *testing.T) {
	corpus := testenv.Shared(t, "corpus/melange")
	if got, err := GoPackage(filepath.Join(corpus, "examples_go-build.yaml")); err != nil || got == "" {
		t.Errorf("corpus go-build example: %q, %v", got, err)
	}
}

// Every corpus config with a Go pipeline yields a Go package for {go}.
func TestGoPackageCorpusGoConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.Shared(t, "corpus/melange"), "*.yaml"))
	n := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), "uses: go/") {
			continue
		}
		n++
		if _, err := GoPackage(f); err != nil {
			t.Errorf("%v", err)
		}
	}
	if n == 0 {
		t.Fatal("no corpus config uses a go/ pipeline")
	}
}
