package main

// Registry-facing reliability tests (docs/reliability.md): faults injected
// by a loopback proxy in front of the real docker-registry, a blob tampered
// with in the registry's storage, htpasswd over TLS with a test CA, the
// plain-HTTP policy, and two builders pushing one tag.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"golang.org/x/crypto/bcrypt"
)

// faultConfig says which faults the proxy injects.
type faultConfig struct {
	every503 int           // answer every Nth request 503 (10: 10%)
	cutGets  int           // cut this many blob downloads halfway
	cutPuts  int           // cut this many blob upload bodies after 1000 bytes
	slowEach int           // delay every Nth request...
	slow     time.Duration // ...by this much
	downFrom int           // from the Nth request on, answer everything 503 (0: never)
}

// faultProxy is a loopback reverse proxy in front of the real registry.
type faultProxy struct {
	srv *httptest.Server
	cfg faultConfig

	mu                                sync.Mutex
	requests, n503, cutG, cutP, slowN int
}

var errCut = errors.New("fault proxy: connection cut")

type cutBody struct {
	r    io.ReadCloser
	left int64
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.r.Close() }

func newFaultProxy(t *testing.T, target string, cfg faultConfig) *faultProxy {
	p := &faultProxy{cfg: cfg}
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // a cut response has sent part of its body
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ErrorHandler = func(http.ResponseWriter, *http.Request, error) {
		panic(http.ErrAbortHandler) // reset the client's connection
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || !strings.Contains(resp.Request.URL.Path, "/blobs/") ||
			resp.StatusCode != http.StatusOK || resp.ContentLength < 2000 {
			return nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cutG < p.cfg.cutGets {
			p.cutG++
			resp.Body = &cutBody{r: resp.Body, left: resp.ContentLength / 2}
		}
		return nil
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests++
		n := p.requests
		fail := p.cfg.every503 > 0 && n%p.cfg.every503 == 0 || p.cfg.downFrom > 0 && n >= p.cfg.downFrom
		if fail {
			p.n503++
		}
		cut := !fail && (r.Method == http.MethodPatch || r.Method == http.MethodPut) &&
			strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength != 0 && p.cutP < p.cfg.cutPuts
		if cut {
			p.cutP++
		}
		slow := p.cfg.slowEach > 0 && n%p.cfg.slowEach == 0
		if slow {
			p.slowN++
		}
		p.mu.Unlock()
		if slow {
			time.Sleep(p.cfg.slow)
		}
		if fail {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if cut {
			r.Body = &cutBody{r: r.Body, left: 1000}
		}
		rp.ServeHTTP(w, r)
	}))
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

func (p *faultProxy) counts() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("requests=%d 503s=%d cut-downloads=%d cut-uploads=%d slowed=%d", p.requests, p.n503, p.cutG, p.cutP, p.slowN)
}

// TestRegistryFaultsEndToEnd: melcache push and pull of a real cache (a Go
// build, testenv.RealCache) through a proxy answering 10% of requests 503, cutting
// uploads and downloads mid-blob and slowing responses, complete through
// retries and restore the cache exactly. When the registry stays down, both
// fail with a message naming the registry and the status, and the old cache
// is intact.
func TestRegistryFaultsEndToEnd(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (registry through a fault proxy, real cache)")
	// Its own registry, proxy, dirs and environment (baseEnv): it
	// waits on the network mostly, so it runs beside the others.
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	real := testenv.RealCache(t)
	src := filepath.Join(t.TempDir(), "src")
	testenv.CopyTree(t, real, src)
	srcState := treeState(t, src)

	p := newFaultProxy(t, reg.Host, faultConfig{every503: 10, cutGets: 2, cutPuts: 2, slowEach: 7, slow: 300 * time.Millisecond})
	ref := p.host() + "/cache/faults:v1"
	r := mustRun(t, nil, "push", "-v", "--dir", src, ref)
	t.Logf("push through faults: %s", p.counts())
	if treeState(t, src) != srcState {
		t.Fatal("push changed the source")
	}
	dst := filepath.Join(t.TempDir(), "dst")
	mustRun(t, nil, "pull", "-v", "--dir", dst, ref)
	t.Logf("push+pull through faults: %s", p.counts())
	if got := treeState(t, dst); got != srcState {
		t.Fatalf("pulled cache differs from the pushed one:\n%s", stateDiff(srcState, got))
	}
	checkClean(t, dst)
	p.mu.Lock()
	if p.n503 == 0 || p.cutG == 0 || p.cutP == 0 || p.slowN == 0 {
		p.mu.Unlock()
		t.Fatalf("not every fault was injected: %s", p.counts())
	}
	p.mu.Unlock()
	if !strings.Contains(r.stderr, "retrying") {
		t.Logf("push -v stderr has no retry log:\n%s", r.stderr)
	}

	// Retries run out: the registry answers 503 after the manifest,
	// config and index are read.
	old := filepath.Join(t.TempDir(), "old")
	mkCache(t, old, 7, 20, 1000)
	oldState := treeState(t, old)
	down := newFaultProxy(t, reg.Host, faultConfig{downFrom: 5})
	r = mrun(t, nil, "pull", "--dir", old, down.host()+"/cache/faults:v1")
	t.Logf("pull against a registry that went down: exit %d, %s\n%s", r.code, down.counts(), r.stderr)
	if r.code != 1 || !strings.Contains(r.stderr, down.host()) || !strings.Contains(r.stderr, "503") {
		t.Fatalf("pull with the registry down: exit %d, stderr %q; want 1 and a message naming the registry and 503", r.code, r.stderr)
	}
	if treeState(t, old) != oldState {
		t.Fatal("failed pull changed the old cache")
	}
	checkClean(t, old)
	down2 := newFaultProxy(t, reg.Host, faultConfig{downFrom: 3})
	r = mrun(t, nil, "push", "--dir", old, down2.host()+"/cache/faults:v2")
	t.Logf("push against a registry that went down: exit %d, %s\n%s", r.code, down2.counts(), r.stderr)
	if r.code != 1 || !strings.Contains(r.stderr, down2.host()) || !strings.Contains(r.stderr, "503") {
		t.Fatalf("push with the registry down: exit %d, stderr %q", r.code, r.stderr)
	}
	if treeState(t, old) != oldState {
		t.Fatal("failed push changed the cache")
	}
}

// TestRegistryTamperedBlobRefused edits one byte of a data layer in the real
// registry's storage: pull refuses it, naming the corruption, and the cache
// dir is unchanged.
func TestRegistryTamperedBlobRefused(t *testing.T) {
	// Its own registry, proxy, dirs and environment (baseEnv): it
	// waits on the network mostly, so it runs beside the others.
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	w := t.TempDir()
	src := filepath.Join(w, "src")
	mkCache(t, src, 4, 50, 4000)
	ref := reg.Host + "/cache/tamper:v1"
	mustRun(t, nil, "push", "-q", "--dir", src, ref)
	// The data layer is the biggest blob.
	var biggest string
	var size int64
	filepath.WalkDir(filepath.Join(reg.Root, "docker", "registry", "v2", "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "data" {
			if fi, _ := d.Info(); fi.Size() > size {
				biggest, size = p, fi.Size()
			}
		}
		return nil
	})
	if biggest == "" {
		t.Fatal("no blob in the registry storage")
	}
	b, _ := os.ReadFile(biggest)
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(biggest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(w, "dst")
	mkCache(t, dst, 5, 5, 100)
	before := treeState(t, dst)
	r := mrun(t, nil, "pull", "--dir", dst, ref)
	if r.code != 1 || !strings.Contains(r.stderr, "tampered") || !strings.Contains(r.stderr, reg.Host) {
		t.Fatalf("pull of a tampered blob: exit %d, stderr %q; want 1, the registry and 'tampered'", r.code, r.stderr)
	}
	t.Logf("refused: %s", strings.TrimSpace(r.stderr))
	if treeState(t, dst) != before {
		t.Fatal("refused pull changed the cache")
	}
	checkClean(t, dst)
}

// testPKI writes a CA and a server certificate for 127.0.0.1 signed by it.
func testPKI(t *testing.T, dir string) (caPath, certPath, keyPath string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "melcache test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	caPath, certPath, keyPath = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return
}

// dockerConfig writes a docker config.json logging user:pass into host, as
// docker login does, and returns its directory (DOCKER_CONFIG).
func dockerConfig(t *testing.T, host, user, pass string) string {
	d := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	os.WriteFile(filepath.Join(d, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)), 0o600)
	return d
}

// TestCredentialsTLS: docker-registry with htpasswd over TLS (a CA made
// here), credentials from the docker config authn.DefaultKeychain reads. The
// CA is trusted through --ca-cert or SSL_CERT_FILE; the right password
// works end to end; a wrong one exits 1 with "authentication failed for
// HOST"; the password appears in no output, log or state file, -v included.
func TestCredentialsTLS(t *testing.T) {
	// Its own registry, proxy, dirs and environment (baseEnv): it
	// waits on the network mostly, so it runs beside the others.
	t.Parallel()
	w := t.TempDir()
	ca, cert, key := testPKI(t, w)
	const user = "builder"
	pass := "pw-" + base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))[:16]
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(w, "htpasswd")
	os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o644)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{
		HTTPExtra:   "  tls:\n    certificate: " + cert + "\n    key: " + key + "\n",
		ExtraConfig: "auth:\n  htpasswd:\n    realm: melcache-test\n    path: " + htpasswd + "\n",
	})
	good := []string{"DOCKER_CONFIG=" + dockerConfig(t, reg.Host, user, pass)}
	bad := []string{"DOCKER_CONFIG=" + dockerConfig(t, reg.Host, user, pass+"x")}
	src := filepath.Join(w, "src")
	mkCache(t, src, 6, 30, 1000)
	ref := reg.Host + "/cache/secure:v1"
	var outputs []runResult
	check := func(r runResult) runResult { outputs = append(outputs, r); return r }

	// Untrusted CA: refused with a certificate error.
	r := check(mrun(t, good, "pull", "-v", "--dir", filepath.Join(w, "x"), ref))
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("pull without the CA: exit %d, %q", r.code, r.stderr)
	}
	check(mustRun(t, good, "push", "-v", "--ca-cert", ca, "--dir", src, ref))
	dst := filepath.Join(w, "dst")
	check(mustRun(t, append(good, "SSL_CERT_FILE="+ca), "pull", "-v", "--dir", dst, ref))
	if treeState(t, dst) != treeState(t, src) {
		t.Fatal("pulled cache differs")
	}
	check(mustRun(t, good, "ls", "-v", "--ca-cert", ca, reg.Host+"/cache/secure"))
	check(mustRun(t, good, "inspect", "-v", "--ca-cert", ca, ref))
	// gc and doctor open the same store with the same trust.
	check(mustRun(t, good, "gc", "--ca-cert", ca, "--keep-last", "5", "--dry-run", reg.Host+"/cache/secure"))
	dr := check(mrun(t, good, "doctor", "--dir", src, "--ca-cert", ca, ref))
	if !regexp.MustCompile(`(?m)^pass\s+registry`).MatchString(dr.stdout) || strings.Contains(dr.stdout, "x509") {
		t.Fatalf("doctor --ca-cert did not reach the registry:\n%s%s", dr.stdout, dr.stderr)
	}

	want := "authentication failed for " + reg.Host
	for _, args := range [][]string{
		{"push", "-v", "--ca-cert", ca, "--dir", src, reg.Host + "/cache/secure:v2"},
		{"pull", "-v", "--ca-cert", ca, "--dir", filepath.Join(w, "y"), ref},
		{"ls", "--ca-cert", ca, reg.Host + "/cache/secure"},
	} {
		r := check(mrun(t, bad, args...))
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("%s with a wrong password: exit %d, stderr %q; want 1 and %q", args[0], r.code, r.stderr, want)
		}
	}
	// The secret never appears: not in any output, not in melcache's
	// state files.
	for _, r := range outputs {
		if strings.Contains(r.stdout+r.stderr, pass) || strings.Contains(r.stdout+r.stderr, base64.StdEncoding.EncodeToString([]byte(user+":"+pass))) {
			t.Fatalf("password in output:\n%s%s", r.stdout, r.stderr)
		}
	}
	for _, d := range []string{src, dst} {
		filepath.WalkDir(filepath.Join(d, ".melcache"), func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				if b, _ := os.ReadFile(p); strings.Contains(string(b), pass) {
					t.Fatalf("password in %s", p)
				}
			}
			return nil
		})
	}
	t.Logf("%d runs, none printed the password", len(outputs))
}

// TestPlainHTTPToPrivateAddressRefused: pull of a registry on a private
// address never sends it plain HTTP without --insecure. Every connection
// melcache makes goes through HTTP(S)_PROXY, a loopback recorder here, so
// what would have left the host is observed, not assumed, and nothing
// leaves loopback. TLS is allowed to any host (ggcr tries HTTPS first: a
// CONNECT tunnel, which the recorder refuses); the plain-HTTP fallback that
// ggcr alone would make to an RFC 1918 address is refused before it is
// sent. With --insecure the plain request does reach the recorder, which
// shows the recorder sees such requests.
func TestPlainHTTPToPrivateAddressRefused(t *testing.T) {
	// Its own registry, proxy, dirs and environment (baseEnv): it
	// waits on the network mostly, so it runs beside the others.
	t.Parallel()
	var mu sync.Mutex
	var plain, tunnels []string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.Method == http.MethodConnect {
			tunnels = append(tunnels, r.Host)
		} else {
			plain = append(plain, r.Method+" "+r.URL.String())
		}
		mu.Unlock()
		http.Error(w, "recorder", http.StatusForbidden)
	}))
	defer rec.Close()
	env := []string{"HTTP_PROXY=" + rec.URL, "HTTPS_PROXY=" + rec.URL, "http_proxy=" + rec.URL, "https_proxy=" + rec.URL, "NO_PROXY=", "no_proxy="}
	dir := filepath.Join(t.TempDir(), "d")
	r := mrun(t, env, "pull", "--dir", dir, "10.1.2.3:5000/x:y")
	if r.code != 1 || !strings.Contains(r.stderr, "refusing plain HTTP to 10.1.2.3:5000") {
		t.Fatalf("pull 10.1.2.3:5000/x:y: exit %d, stderr %q", r.code, r.stderr)
	}
	mu.Lock()
	if len(plain) != 0 {
		t.Fatalf("plain HTTP requests left melcache: %v", plain)
	}
	t.Logf("refused with no plain HTTP sent; TLS tunnels attempted: %v", tunnels)
	mu.Unlock()
	if exists(dir) {
		t.Fatal("refused pull created the cache dir")
	}
	r = mrun(t, env, "pull", "--insecure", "--dir", dir, "10.1.2.3:5000/x:y")
	mu.Lock()
	defer mu.Unlock()
	if r.code == 0 || len(plain) == 0 {
		t.Fatalf("with --insecure the plain request should reach the recorder (and fail there): exit %d, %v", r.code, plain)
	}
}

// TestRequireDigest: pull --require-digest refuses a tag (exit 2, before any
// network use) and accepts REPO@sha256:..., which ls prints.
func TestRequireDigest(t *testing.T) {
	// Its own registry, proxy, dirs and environment (baseEnv): it
	// waits on the network mostly, so it runs beside the others.
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	w := t.TempDir()
	src := filepath.Join(w, "src")
	mkCache(t, src, 8, 10, 500)
	repo := reg.Host + "/cache/pin"
	out := mustRun(t, nil, "push", "--dir", src, repo+":v1").stdout
	i := strings.Index(out, "@sha256:")
	if i < 0 {
		t.Fatalf("push output has no digest: %q", out)
	}
	digest := out[i+1 : i+1+7+64]
	for _, ref := range []string{repo + ":v1", repo, ""} {
		args := []string{"pull", "--require-digest", "--dir", filepath.Join(w, "x")}
		if ref != "" {
			args = append(args, ref)
		}
		r := mrun(t, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--require-digest") {
			t.Fatalf("pull --require-digest %q: exit %d, %q", ref, r.code, r.stderr)
		}
	}
	dst := filepath.Join(w, "dst")
	mustRun(t, nil, "pull", "--require-digest", "--dir", dst, repo+"@"+digest)
	if treeState(t, dst) != treeState(t, src) {
		t.Fatal("pinned pull differs")
	}
}

// TestSameTagLastWriterWins: two builders push the same tag one after the
// other, then at once; the tag always names a whole valid snapshot: the last
// writer's when sequential, one of the two when concurrent.
func TestSameTagLastWriterWins(t *testing.T) {
	// Its own registry, proxy, dirs and environment (baseEnv): it
	// waits on the network mostly, so it runs beside the others.
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	w := t.TempDir()
	a, b := filepath.Join(w, "a"), filepath.Join(w, "b")
	mkCache(t, a, 11, 60, 3000)
	mkCache(t, b, 12, 60, 3000)
	sa, sb := treeState(t, a), treeState(t, b)
	ref := reg.Host + "/cache/shared:main"
	pullBack := func(name string) string {
		d := filepath.Join(w, name)
		mustRun(t, nil, "pull", "-q", "--replace", "--dir", d, ref)
		mustRun(t, nil, "inspect", ref)
		return treeState(t, d)
	}
	mustRun(t, nil, "push", "-q", "--dir", a, ref)
	mustRun(t, nil, "push", "-q", "--dir", b, ref)
	if pullBack("seq") != sb {
		t.Fatal("sequential pushes: the tag is not the last writer's snapshot")
	}
	for i := range raceRounds(3) {
		var wg sync.WaitGroup
		var ra, rb runResult
		wg.Add(2)
		go func() { defer wg.Done(); ra = mrun(t, nil, "push", "-q", "--dir", a, ref) }()
		go func() { defer wg.Done(); rb = mrun(t, nil, "push", "-q", "--dir", b, ref) }()
		wg.Wait()
		if ra.code != 0 || rb.code != 0 {
			t.Fatalf("concurrent pushes: %d %q / %d %q", ra.code, ra.stderr, rb.code, rb.stderr)
		}
		got := pullBack(fmt.Sprintf("conc%d", i))
		if got != sa && got != sb {
			t.Fatal("concurrent pushes left a tag that is neither builder's snapshot")
		}
	}
}
