package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Real package-manager caches as melange's builds fill them, offline: the
// mount tests verify them and the oci tests snapshot them, from the same
// helpers. They take the cache's host directory (DIR/npm, DIR/pip), not a
// mount.Layout: mount's own tests import this package.

// Run runs name with args in dir and env, failing the test with its output
// when it fails, and returns the output.
func Run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// NPMEnv is the environment npm runs with in tests: its cache at cache
// (npm_config_cache, where melange points it), a HOME of its own (no
// ~/.npmrc), and nothing that would go to the network.
func NPMEnv(cache, home string) []string {
	return append(os.Environ(), "npm_config_cache="+cache, "HOME="+home,
		"npm_config_update_notifier=false", "npm_config_audit=false", "npm_config_fund=false")
}

// NPMPackage is a package FillNPMCache packs: Name@Version, whose index.js
// is Main, plus Extra files (name to content) to give it a size.
type NPMPackage struct {
	Name, Version, Main string
	Extra               map[string][]byte
}

// DemoNPMPackage is the small package the verify tests use.
var DemoNPMPackage = NPMPackage{Name: "melc-demo", Version: "1.0.0", Main: "module.exports = 42\n"}

// FillNPMCache fills the npm cache at cache as a melange build would,
// offline: npm pack of a package the test writes, npm cache add, then npm
// install --offline from the cache. It skips under -short and without npm.
func FillNPMCache(t testing.TB, cache string, pkg NPMPackage) {
	t.Helper()
	SkipShort(t, "real npm (a package manager run, ~10-20 s)")
	npm := RequireTool(t, "npm")
	work := t.TempDir()
	env := NPMEnv(cache, work)
	src, app := filepath.Join(work, "pkg"), filepath.Join(work, "app")
	files := map[string][]byte{
		filepath.Join(src, "package.json"): []byte(`{"name":"` + pkg.Name + `","version":"` + pkg.Version + `","main":"index.js"}`),
		filepath.Join(src, "index.js"):     []byte(pkg.Main),
		filepath.Join(app, "package.json"): []byte(`{"name":"app","version":"1.0.0"}`),
	}
	for n, b := range pkg.Extra {
		files[filepath.Join(src, n)] = b
	}
	for p, b := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Run(t, src, env, npm, "pack", "--pack-destination", work)
	tgz := filepath.Join(work, pkg.Name+"-"+pkg.Version+".tgz")
	Run(t, work, env, npm, "cache", "add", tgz)
	Run(t, app, env, npm, "install", "--offline", tgz)
	if _, err := os.Stat(filepath.Join(app, "node_modules", pkg.Name, "index.js")); err != nil {
		t.Fatalf("npm install --offline from the cache: %v", err)
	}
}

// WriteSdist writes a setuptools source distribution of the module
// melcdemo into dir, as a package index would serve it.
func WriteSdist(t testing.TB, dir string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{
		"melcdemo-1.0/setup.py":    "from setuptools import setup\nsetup(name='melcdemo', version='1.0', py_modules=['melcdemo'])\n",
		"melcdemo-1.0/melcdemo.py": "ANSWER = 42\n",
	} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	_ = gz.Close()
	if err := os.WriteFile(filepath.Join(dir, "melcdemo-1.0.tar.gz"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FillPipCache has pip build a wheel from a local sdist with its cache at
// cache (PIP_CACHE_DIR, where melange points it), offline, and returns the
// wheel pip cached. It skips under -short and without a python3 with pip,
// setuptools and wheel.
func FillPipCache(t testing.TB, cache string) string {
	t.Helper()
	SkipShort(t, "real pip (a package manager run, ~10-20 s)")
	py := RequirePython(t, "pip", "setuptools", "wheel")
	work := t.TempDir()
	WriteSdist(t, work)
	env := append(os.Environ(), "PIP_CACHE_DIR="+cache, "HOME="+work, "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_CONFIG_FILE=/dev/null")
	Run(t, work, env, py, "-m", "pip", "install", "--no-index", "--find-links", work,
		"--no-build-isolation", "--target", filepath.Join(work, "out"), "melcdemo")
	whl, _ := filepath.Glob(filepath.Join(cache, "wheels", "*", "*", "*", "*", "melcdemo-1.0-*.whl"))
	if len(whl) != 1 {
		t.Fatalf("pip cached wheels %v, want one melcdemo wheel under wheels/", whl)
	}
	return whl[0]
}
