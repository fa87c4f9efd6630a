package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/internal/units"
	"github.com/melcache/melcache/oci"
)

// maxUnchangedPush is the bound on what an unchanged warm build
// pushes: a manifest and small metadata, never a layer or a whole index.
const maxUnchangedPush = 64 << 10

// TestBuildUnchangedWarmPush: an unchanged warm build through the melange
// stand-in (a real go build of the stand-in's module), followed by its
// push, uploads at most 64 KiB: in the dir that pushed, and in a fresh dir
// restored with --pull. Go rewrites action entries' time fields and writes
// module-index entries on such builds; neither may cost a layer or an index.
func TestBuildUnchangedWarmPush(t *testing.T) {
	t.Parallel() // slow and self-contained (own dirs, registry, processes): overlaps with the others
	e := newE2E(t, -1)
	proxy := melangetest.FileProxy(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	repo := melangetest.CopyModule(t, filepath.Join(e.work, "repo"))
	gitEnv := append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	melangetest.Run(t, repo, gitEnv, "git", "init", "--quiet")
	melangetest.Run(t, repo, gitEnv, "git", "add", "-A")
	melangetest.Run(t, repo, gitEnv, "git", "commit", "--quiet", "-m", "v1.2.3")
	melangetest.Run(t, repo, gitEnv, "git", "tag", "v1.2.3")
	commit := strings.TrimSpace(string(melangetest.Run(t, repo, gitEnv, "git", "rev-parse", "HEAD")))
	cfg := strings.NewReplacer("REPO", repo, "COMMIT", commit).Replace(e2eConfig)
	writeTestFile(t, filepath.Join(e.work, "src", "melange.yaml"), cfg)
	arch := oci.HostArch()
	ref := reg.Host + "/e2e/warm"
	build := func(name string, env []string, flags ...string) buildReport {
		t.Helper()
		args := append([]string{"build", "src/melange.yaml", "--melange", e.melange, "--key", "hello-{arch}",
			"--offline", "--set", "GOFLAGS=-x", "--json", "--push", ref}, flags...)
		args = append(args, "--", "--arch", arch, "--workspace-dir", "ws-"+name)
		stdout, stderr, code := e.run(env, args...)
		if code != 0 {
			t.Fatalf("%s melcache build: exit %d\n%s\n%s", name, code, stdout, stderr)
		}
		r := decodeReport(t, stdout)
		if r.Push == nil {
			t.Fatalf("%s build pushed nothing: %+v", name, r)
		}
		if name != "cold" {
			if n := testenv.CountCompiles([]byte(stderr)); n != 0 {
				t.Fatalf("%s build compiled %d packages: not a warm build", name, n)
			}
		}
		return r
	}
	cold := build("cold", []string{"GOPROXY=" + proxy}, "--dir", "cold", "--preload")
	for _, w := range []struct {
		name  string
		flags []string
	}{
		{"again", []string{"--dir", "cold"}},
		{"restored", []string{"--dir", "warm", "--pull", ref}},
	} {
		r := build(w.name, nil, w.flags...)
		p := r.Push
		if up := p.DataBytes + p.MetaBytes; up > maxUnchangedPush || p.Layers != 0 {
			t.Errorf("%s warm build pushed %s in %d layers (%+v); want no layer and at most %s",
				w.name, units.FormatSize(up), p.Layers, p, units.FormatSize(maxUnchangedPush))
		}
		t.Logf("%s warm build: pushed %d bytes (%d layers), %d module-index entries left out, %d files hashed",
			w.name, p.DataBytes+p.MetaBytes, p.Layers, p.ModIndex, p.Hashed)
	}
	t.Logf("cold build pushed %s", units.FormatSize(cold.Push.DataBytes+cold.Push.MetaBytes))
}
