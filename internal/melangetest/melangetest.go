// Package melangetest gives tests a melange they can run: the melange-standin
// program (cmd/melange-standin) that follows `melange build`'s contract, a
// real multi-package Go module with third-party dependencies to build, and a
// file:// module proxy holding those dependencies, so builds need no network.
package melangetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// standinPkg is the import path of the stand-in program.
const standinPkg = "github.com/melcache/melcache/internal/melangetest/cmd/melange-standin"

// Binary returns the path of the melange stand-in, built once per source
// state (its own files, go.mod and go.sum, by relative path: every clone
// shares it) and Go version and shared by every test binary (under
// testenv.FixturesDir()). It is named "melange" so a test can put its
// directory first in PATH.
func Binary(t testing.TB) string {
	t.Helper()
	src := filepath.Join(testenv.RepoRoot(), "internal", "melangetest", "cmd", "melange-standin")
	key := testenv.HashFiles(func(rel string) bool { return !strings.HasSuffix(rel, "_test.go") }, src)
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), f))
		if err != nil {
			t.Fatal(err)
		}
		key += "\x00" + string(b)
	}
	return testenv.Binary(t, "melange-standin", "melange", standinPkg, key)
}

// ModuleDir is the test module: example.com/hello, a main package
// (cmd/hello) and an internal package, depending on github.com/spf13/cobra
// and golang.org/x/mod. It is part of the repository: copy it before use.
func ModuleDir() string {
	return filepath.Join(testenv.RepoRoot(), "internal", "melangetest", "testdata", "hello")
}

// CopyModule copies the test module into dst (created) and returns dst.
func CopyModule(t testing.TB, dst string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.CopyTree(t, ModuleDir(), dst)
	return dst
}

// FileProxy returns a GOPROXY value (file://…/cache/download) serving every
// module the test module's build list needs: `go mod download all` into a
// module cache built once and shared across tests (read it, never write it).
// With it, builds of the test module need no network and no host module
// cache.
func FileProxy(t testing.TB) string {
	t.Helper()
	return ModuleProxy(t, "melangetest-proxy", ModuleDir())
}

// ModuleProxy is FileProxy for the module in dir (e.g. examples/hello-go),
// its fixture named name: `go mod download all` in a copy of dir, keyed on
// its go.mod and go.sum.
func ModuleProxy(t testing.TB, name, dir string) string {
	t.Helper()
	cache := testenv.SharedCache(t, name+"-"+moduleHash(t, dir), func(t testing.TB, env testenv.GoEnv) {
		work := filepath.Join(testenv.TempDir(t), "module")
		testenv.CopyTree(t, dir, work)
		cmd := exec.Command("go", "mod", "download", "all")
		cmd.Dir = work
		cmd.Env = env.Environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go mod download all in a copy of %s: %v\n%s", dir, err, out)
		}
	})
	return "file://" + filepath.Join(cache, "gomodcache", "cache", "download")
}

func moduleHash(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// OfflineEnv is the environment of a go command that must not reach any
// network: modules come only from proxy (a FileProxy URL, or "off" for the
// module cache alone), no checksum database, the local toolchain.
func OfflineEnv(proxy, modcache string, extra ...string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOPROXY", "GOMODCACHE", "GOFLAGS", "GOSUMDB", "GONOSUMDB", "GOTOOLCHAIN", "GOPRIVATE", "GONOPROXY":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GOPROXY="+proxy, "GOMODCACHE="+modcache, "GOFLAGS=-mod=mod", "GOSUMDB=off", "GOTOOLCHAIN=local")
	return append(env, extra...)
}

// Run runs a command and returns its combined output, failing the test on
// error.
func Run(t testing.TB, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out.Bytes())
	}
	return out.Bytes()
}

// hostArchName is the host architecture in melange's naming: the
// subdirectory of --workspace-dir the stand-in (like melange) builds in.
func hostArchName() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}
