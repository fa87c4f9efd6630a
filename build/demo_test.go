package build

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/mount"
)

// TestDemoSandboxFallback: without bwrap the demo builds with plain go
// build (the same caches, GOPROXY=off) and says why.
func TestDemoSandboxFallback(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	sb := detectSandbox(context.Background())
	if sb.bwrap != "" || !strings.Contains(sb.why, "bwrap not found") || sb.describe() != "none (GOPROXY=off)" {
		t.Errorf("sandbox without bwrap in PATH: %+v (%s)", sb, sb.describe())
	}
	if got := sb.wrap([]string{"go", "build"}); strings.Join(got, " ") != "go build" {
		t.Errorf("fallback wraps the build as %q, want plain go build", got)
	}
	env := strings.Join(offlineGoEnv(mustLayout(t, filepath.Join(t.TempDir(), "c"))), "\n")
	for _, want := range []string{"GOPROXY=off", "GOSUMDB=off", "GOTOOLCHAIN=local", "GOFLAGS=\n", "GOMODCACHE=", "GOCACHE="} {
		if !strings.Contains(env+"\n", want) {
			t.Errorf("offline build environment lacks %q", want)
		}
	}
}

// TestDemoNeedsGoMod: a source without go.mod fails before anything is
// built, naming the source.
func TestDemoNeedsGoMod(t *testing.T) {
	src := t.TempDir()
	_, err := Demo(context.Background(), DemoOptions{Source: src, WorkDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), src) || !strings.Contains(err.Error(), "no go.mod") {
		t.Fatalf("err %v, want one naming %s and its missing go.mod", err, src)
	}
}

func mustLayout(t *testing.T, dir string) mount.Layout {
	t.Helper()
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
