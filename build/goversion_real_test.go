package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// TestGoResolverRealAPKIndex reads {go} from an APKINDEX.tar.gz made by the
// real melange (`melange index`, signed: a signature part, then the index),
// as the README's flow with ../shared/melange passes it: an unpinned go and
// --repository-append DIR. The repository's go is /usr/local/go.
func TestGoResolverRealAPKIndex(t *testing.T) {
	testenv.SkipShort(t, "builds an apk repository with the real melange (~30 s)")
	if runtime.GOARCH != "amd64" {
		t.Skip("../shared/melange is a linux/amd64 binary")
	}
	dir := testenv.Shared(t, "melange")
	testenv.RequireTool(t, "zstd")
	testenv.RequireTool(t, "busybox")
	tmp := t.TempDir()
	melange := filepath.Join(tmp, "melange")
	run := func(env []string, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run(nil, "zstd", "-d", "-q", filepath.Join(dir, "melange.zst"), "-o", melange)
	if err := os.Chmod(melange, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(tmp, "apkrepo")
	run([]string{"MELANGE=" + melange}, filepath.Join(dir, "build-apkrepo.sh"), repo)

	cfg := writeYAML(t, "      - busybox\n      - go\n", "")
	got, err := NewGoResolver(GoVersionOptions{Config: cfg, Repositories: []string{repo}, Arch: "x86_64"}).Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// build-apkrepo.sh packages /usr/local/go as go-VERSION-r0.
	b, err := os.ReadFile("/usr/local/go/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	want, err := ParseGoVersion(first)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("{go} = %q from the real index, want %q (/usr/local/go's %s)", got, want, first)
	}
}
