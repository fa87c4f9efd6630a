package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/gofrs/flock"
)

// RepoRoot returns the root of the melcache module.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// GoEnv is the environment of a go command that uses a given pair of caches.
type GoEnv struct {
	ModCache string // GOMODCACHE
	Cache    string // GOCACHE
	// Extra holds more KEY=VALUE pairs, appended last (and so winning).
	Extra []string
}

// Environ returns os.Environ with the caches set, modules resolved from the
// host's module cache first (so fixtures need no network when the host already
// has the modules) and then from the configured proxy, and the toolchain
// pinned to the local one.
func (e GoEnv) Environ() []string {
	env := os.Environ()
	proxy := "file://" + filepath.Join(hostModCache(), "cache", "download")
	if p := goEnv("GOPROXY"); p != "" && p != "off" {
		proxy += "," + p
	}
	env = append(env, "GOMODCACHE="+e.ModCache, "GOCACHE="+e.Cache, "GOPROXY="+proxy,
		"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod -buildvcs=false", "GONOSUMDB=*", "GOSUMDB=off")
	return append(env, e.Extra...)
}

var hostModCacheOnce string

func hostModCache() string {
	if hostModCacheOnce == "" {
		hostModCacheOnce = goEnv("GOMODCACHE")
	}
	return hostModCacheOnce
}

func goEnv(key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// compileLine matches the compile actions that `go build -x` prints: one per
// package compiled, none for a package taken from GOCACHE.
var compileLine = regexp.MustCompile(`(?m)/compile( |$)`)

// CountCompiles counts the compile actions in the -x output of a go command.
func CountCompiles(xOutput []byte) int { return len(compileLine.FindAll(xOutput, -1)) }

// GoBuild runs `go build -x -trimpath -o OUT PKG` in dir with env and
// returns the number of compile actions and the combined output. It fails the
// test when the build fails.
func GoBuild(t testing.TB, dir string, env GoEnv, pkg string, args ...string) (compiles int, out []byte) {
	t.Helper()
	// -buildvcs=false: VCS stamping puts the commit and "modified" state in
	// the main package's build info, so a commit between building a shared
	// fixture and rebuilding from it would recompile main. The environment's
	// GOFLAGS cannot be relied on for this: callers replace it.
	argv := append([]string{"build", "-x", "-trimpath", "-buildvcs=false", "-o", filepath.Join(t.TempDir(), "out")}, args...)
	argv = append(argv, pkg)
	cmd := exec.Command("go", argv...)
	cmd.Dir = dir
	cmd.Env = env.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(argv, " "), dir, err, tail(out, 4000))
	}
	return CountCompiles(out), out
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// SharedCache returns a directory holding gomodcache/ and gocache/ filled by
// build, built once per fixture name, Go version and go.sum content and then
// shared by every test (across packages and runs: it lives under
// os.TempDir()). Callers must not modify it: copy it with CopyTree.
func SharedCache(t testing.TB, name string, build func(t testing.TB, env GoEnv)) string {
	t.Helper()
	h := sha256.Sum256([]byte(runtime.Version() + "\x00" + name + "\x00" + sourceHash()))
	base := filepath.Join(os.TempDir(), "melcache-testfixtures")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, name+"-"+hex.EncodeToString(h[:6]))
	fl := flock.New(dir + ".lock")
	if err := fl.Lock(); err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir
	}
	RemoveAll(t, dir)
	env := GoEnv{ModCache: filepath.Join(dir, "gomodcache"), Cache: filepath.Join(dir, "gocache")}
	build(t, env)
	if t.Failed() {
		t.FailNow()
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sourceHash digests go.sum and every .go file of the module, so a fixture
// built from the module's own code is rebuilt when that code changes.
func sourceHash() string {
	h := sha256.New()
	root := RepoRoot()
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".go") || d.Name() == "go.sum") {
			b, _ := os.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}

// MelcacheCache is the standard real-cache fixture: `go build -trimpath
// ./cmd/melcache` into fresh caches. It holds a few hundred modules' worth of
// files and a GOCACHE of roughly 100 MB.
func MelcacheCache(t testing.TB) string {
	return SharedCache(t, "melcache-build", func(t testing.TB, env GoEnv) {
		GoBuild(t, RepoRoot(), env, "./cmd/melcache")
	})
}

// CopyTree copies src to dst with cp -a (modes, mtimes and hard links kept).
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("cp", "-a", src, dst)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, stderr.String())
	}
}

// RemoveAll removes path, making read-only directories (module cache trees
// are 0555) writable first.
func RemoveAll(t testing.TB, path string) {
	t.Helper()
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}

// TempDir is t.TempDir whose cleanup copes with read-only module trees even
// when the tests do not run as root.
func TempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	t.Cleanup(func() { RemoveAll(t, d) })
	return d
}
