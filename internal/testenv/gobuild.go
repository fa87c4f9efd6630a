package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
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

// FixturesDir is where shared test fixtures live: built once, reused by
// every test binary, run, worktree and clone on the machine, and keyed on
// what each was built from. Empty it (rm -rf) to measure a cold run.
func FixturesDir() string { return filepath.Join(os.TempDir(), "melcache-testfixtures") }

// SharedCache returns a directory holding gomodcache/ and gocache/ filled by
// build, built once per key and Go version and then shared by every test
// (across packages and runs: it lives under FixturesDir). key must name what
// the build depends on, e.g. name plus HashFiles of its inputs: nothing else
// invalidates it. Callers must not modify it: copy it with CopyTree.
func SharedCache(t testing.TB, key string, build func(t testing.TB, env GoEnv)) string {
	t.Helper()
	return SharedFixture(t, key, func(t testing.TB, dir string) {
		build(t, GoEnv{ModCache: filepath.Join(dir, "gomodcache"), Cache: filepath.Join(dir, "gocache")})
	})
}

// SharedFixture returns a directory filled by build, built once per key and
// Go version under FixturesDir and then shared by every test binary, run,
// worktree and clone: build runs under a lock in an empty dir, and the
// result counts only once build returns without failing the test. The part
// of key before the first NUL names the directory. key must name everything
// the fixture is made from; callers must not modify the result.
func SharedFixture(t testing.TB, key string, build func(t testing.TB, dir string)) string {
	t.Helper()
	base := FixturesDir()
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	name, _, _ := strings.Cut(key, "\x00")
	dir := filepath.Join(base, name+"-"+shortHash(runtime.Version()+"\x00"+key))
	fl := flock.New(dir + ".lock")
	if err := fl.Lock(); err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir
	}
	RemoveAll(t, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	build(t, dir)
	if t.Failed() {
		t.FailNow()
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shortHash names a fixture directory: 12 hex digits of s's SHA-256, plenty
// for the handful of fixtures on one machine.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

// HashFiles digests the regular files under root that keep reports true
// for (nil keeps all), by slash-separated path relative to root and content,
// in lexical order: the same sources give the same hash in every clone and
// worktree, wherever it sits. A missing root hashes as empty.
func HashFiles(keep func(rel string) bool, root string) string {
	h := sha256.New()
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if keep != nil && !keep(rel) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}

var (
	sourceHashOnce sync.Once
	sourceHash     string
)

// SourceHash digests what a build of the module's own code depends on:
// go.mod, go.sum and every non-test .go file outside testdata, bench and
// docs. Test files and test data are left out, so a test-only edit keeps
// fixtures built from the module (the melcache binary) valid.
func SourceHash() string {
	sourceHashOnce.Do(func() {
		sourceHash = HashFiles(isBuildSource, RepoRoot())
	})
	return sourceHash
}

func isBuildSource(rel string) bool {
	for _, dir := range strings.Split(path.Dir(rel), "/") {
		switch dir {
		case ".git", "testdata", "bench", "docs":
			return false
		}
	}
	if rel == "go.mod" || rel == "go.sum" {
		return true
	}
	return strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go")
}

// RealCacheModule is the directory of the module RealCache builds
// (testdata/realcache: cobra and pflag). It is part of the repository: build
// it in place only with -o outside it, never edit it.
func RealCacheModule() string {
	return filepath.Join(RepoRoot(), "internal", "testenv", "testdata", "realcache")
}

// RealCache is the standard real-cache fixture: `go build -trimpath` of
// RealCacheModule into fresh caches: the standard library and two
// third-party modules (zips and read-only extracted trees), a few hundred
// build-cache entries. It is keyed on that module's files and the Go
// version only.
//
// Building it compiles the standard library from scratch, so every test
// that uses it is a real-Go-build test and skips with -short.
func RealCache(t testing.TB) string {
	t.Helper()
	SkipShort(t, "real Go build (fresh caches)")
	key := "realcache\x00" + HashFiles(nil, RealCacheModule())
	return SharedCache(t, key, func(t testing.TB, env GoEnv) {
		GoBuild(t, RealCacheModule(), env, ".")
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

// SeedCache returns a shared fixture whose gocache/ holds what plain go
// (no GOCACHEPROG) writes when it builds and tests the module at src with
// -trimpath: the standard packages a test module needs, so a test through
// GOCACHEPROG compiles only its own packages. Keyed on src's files.
func SeedCache(t testing.TB, src string) string {
	t.Helper()
	key := "seed-" + filepath.Base(src) + "\x00" + HashFiles(func(string) bool { return true }, src)
	return SharedCache(t, key, func(t testing.TB, env GoEnv) {
		for _, args := range [][]string{{"build", "-trimpath", "./..."}, {"test", "-trimpath", "./..."}} {
			cmd := exec.Command("go", args...)
			cmd.Dir, cmd.Env = src, env.Environ()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), src, err, tail(out, 4000))
			}
		}
	})
}
