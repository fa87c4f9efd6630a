package mount

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
)

// fetchConfig fetches a source from an address nothing listens on: the
// build passes only when the fetch pipeline takes it from the fetch cache
// (DIR/sha256:<hex>, the profile's guest path). The step after it checks
// the unpacked file.
const fetchConfig = `package:
  name: fetched
  version: 1.0.0
  epoch: 0
environment:
  contents:
    packages:
      - busybox
pipeline:
  - uses: fetch
    with:
      uri: http://127.0.0.1:9/fetched-1.0.0.tar
      expected-sha256: SUM
  - runs: |
      grep -q "from the fetch cache" hello.txt
      mkdir -p "${{targets.destdir}}/usr/share/fetched"
      cp hello.txt "${{targets.destdir}}/usr/share/fetched/"
`

// TestRealMelangeFetchCache runs the real melange's fetch pipeline offline
// (a new network namespace) with the fetch cache pre-seeded as
// `melange update-cache` would: the cache hit is the only way the build can
// pass, so it shows the fetch cache's profile (its names, at the top of the
// mount) is the one melange reads. verify then checks the file against its
// name; a tampered one is found.
func TestRealMelangeFetchCache(t *testing.T) {
	real := melangetest.RealMelange(t)
	unshare := testenv.RequireTool(t, "unshare")
	work := t.TempDir()
	// A plain tar: the guest's busybox tar does not unpack gzip by itself.
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	body := "hello from the fetch cache\n"
	_ = tw.WriteHeader(&tar.Header{Name: "fetched-1.0.0/hello.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte(body))
	_ = tw.Close()
	sum := sha256.Sum256(tarball.Bytes())
	hexsum := hex.EncodeToString(sum[:])

	l, err := New(filepath.Join(work, "cache"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(context.Background(), PrepareOptions{Caches: []Cache{FetchCache}}); err != nil {
		t.Fatal(err)
	}
	seeded := filepath.Join(l.Dir, "sha256:"+hexsum)
	writeFiles(t, work, map[string]string{
		"melange.yaml":           strings.Replace(fetchConfig, "SUM", hexsum, 1),
		"src/.keep":              "",
		"cache/sha256:" + hexsum: tarball.String(),
	})
	wget := wgetRepo(t, real)
	args := append([]string{"--net", "--", real.Melange, "build", "melange.yaml", "--cache-dir", l.Dir,
		"--repository-append", wget, "--keyring-append", filepath.Join(wget, "wget.rsa.pub")},
		real.Args(filepath.Join(work, "apk-cache"), filepath.Join(work, "out"), filepath.Join(work, "src"))...)
	cmd := exec.Command(unshare, args...)
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("melange build with the fetch cache seeded: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "fetch: found /var/cache/melange/sha256:"+hexsum+" in cache") {
		t.Errorf("melange did not report the cache hit:\n%s", out)
	}
	res := verifyOnly(t, l, false)
	if !res.OK() || len(res.Caches) != 1 || res.Caches[0] != (CacheCheck{Name: FetchCache, Checked: 1}) {
		t.Fatalf("verify after the build: %+v %+v", res.Problems, res.Caches)
	}
	b := tarball.Bytes()
	b[len(b)-10] ^= 1
	if err := os.WriteFile(seeded, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := verifyOnly(t, l, false); len(res.Problems) != 1 || res.Problems[0].Path != seeded {
		t.Fatalf("tampered fetch-cache file: %+v", res.Problems)
	}
}

// wgetRepo returns a signed apk repository holding an empty wget package:
// the fetch pipeline needs wget installed even when it takes the source
// from the cache, and the shared repository has none (busybox's wget lacks
// the flags fetch passes, so only the cache-hit path can run offline
// anyway). Built once per machine with ../shared/melange/mkapk.py.
func wgetRepo(t *testing.T, real *melangetest.Real) string {
	t.Helper()
	mkapk := filepath.Join(testenv.Shared(t, "melange"), "mkapk.py")
	src, err := os.ReadFile(mkapk)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(append(src, real.Melange...))
	key := "wget-apkrepo\x00wget.rsa\x00" + hex.EncodeToString(h[:])
	return filepath.Join(testenv.SharedFixture(t, key, func(t testing.TB, out string) {
		repo := filepath.Join(out, "repo")
		root := filepath.Join(out, "root", "usr", "share", "doc", "wget")
		if err := os.MkdirAll(filepath.Join(repo, "x86_64"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(root, "README"), []byte("placeholder: the fetch pipeline's cache hit needs no wget\n"), 0o644)
		apk := filepath.Join(repo, "x86_64", "wget-1-r0.apk")
		melangetest.Run(t, repo, os.Environ(), real.Melange, "keygen", "wget.rsa")
		melangetest.Run(t, repo, os.Environ(), "python3", mkapk, apk, filepath.Join(out, "root"), "wget", "1-r0", "x86_64", "empty wget", "depend=busybox")
		melangetest.Run(t, repo, os.Environ(), real.Melange, "sign", "--signing-key", "wget.rsa", apk)
		melangetest.Run(t, repo, os.Environ(), real.Melange, "index", "--signing-key", "wget.rsa", "-o", filepath.Join(repo, "x86_64", "APKINDEX.tar.gz"), apk)
	}), "repo")
}
