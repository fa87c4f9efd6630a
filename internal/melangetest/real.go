package melangetest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// Real is the real melange from the shared data directory
// (../shared/melange, see its README.md) with an apk repository to build
// from offline: busybox, go (this machine's /usr/local/go), an empty
// build-base and ca-certificates-bundle.
type Real struct {
	// Melange is the melange binary.
	Melange string
	// Repo is the signed apk repository (Repo/x86_64/APKINDEX.tar.gz).
	Repo string
	// Keyring is the repository's public signing key.
	Keyring string
}

// realArch is the only architecture the shared melange and its apk
// repository exist for.
const realArch = "x86_64"

// RealMelange returns the real melange and its apk repository, each made
// once per machine and shared by every test (under testenv.FixturesDir):
// `zstd -d` of melange.zst, keyed on its SHA-256, and the repository built
// by build-apkrepo.sh (~30 s), keyed on the binary and everything the
// script packages. It skips under -short (every use is an end-to-end
// build) and when ../shared/melange is absent (failing under CI=true, as
// testenv.Shared).
func RealMelange(t testing.TB) *Real {
	t.Helper()
	testenv.SkipShort(t, "end-to-end (the real melange)")
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("../shared/melange is a linux/amd64 binary")
	}
	dir := testenv.Shared(t, "melange")
	testenv.RequireTool(t, "zstd")
	testenv.RequireTool(t, "busybox")
	testenv.RequireTool(t, "bwrap")
	zst := filepath.Join(dir, "melange.zst")
	binKey := fileHash(t, zst)
	bin := filepath.Join(testenv.SharedFixture(t, "real-melange\x00"+binKey, func(t testing.TB, out string) {
		Run(t, "", os.Environ(), "zstd", "-d", "-q", zst, "-o", filepath.Join(out, "melange"))
		if err := os.Chmod(filepath.Join(out, "melange"), 0o755); err != nil {
			t.Fatal(err)
		}
	}), "melange")

	script := filepath.Join(dir, "build-apkrepo.sh")
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	goVersion, err := os.ReadFile("/usr/local/go/VERSION")
	if err != nil {
		t.Fatalf("build-apkrepo.sh packages /usr/local/go: %v", err)
	}
	repoKey := strings.Join([]string{"real-apkrepo", binKey, fileHash(t, script),
		fileHash(t, filepath.Join(dir, "mkapk.py")), fileHash(t, busybox), string(goVersion)}, "\x00")
	repo := filepath.Join(testenv.SharedFixture(t, repoKey, func(t testing.TB, out string) {
		Run(t, "", append(os.Environ(), "MELANGE="+bin), script, filepath.Join(out, "apkrepo"))
	}), "apkrepo")
	return &Real{Melange: bin, Repo: repo, Keyring: filepath.Join(repo, "melange.rsa.pub")}
}

// Args returns the melange build flags for an offline build with the real
// melange, as ../shared/melange/README.md gives them: the bubblewrap runner,
// the apk repository and its key, melange's package cache, the output dir
// and the sources.
func (r *Real) Args(apkCache, outDir, sourceDir string) []string {
	return []string{"--runner", "bubblewrap", "--arch", realArch,
		"--repository-append", r.Repo, "--keyring-append", r.Keyring,
		"--apk-cache-dir", apkCache, "--out-dir", outDir, "--source-dir", sourceDir}
}

// fileHash is the hex SHA-256 of the file at path.
func fileHash(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
