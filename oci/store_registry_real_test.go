package oci

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/melcache/melcache/internal/testenv"
)

// TestRegistryStoreReal runs the store contract against the real
// distribution registry (Debian's docker-registry) on loopback, and counts
// uploads in its access log: a re-push uploads nothing.
func TestRegistryStoreReal(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	s := openTestRegistry(t, reg.Host, "cache/contract", StoreOptions{})
	testStoreContract(t, s, false)

	// A digest-pinned reference keeps its digest and reads that manifest.
	_, _, one, err := s.GetManifest(context.Background(), "one")
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := ParseRef(reg.Host+"/cache/contract@"+one.String(), RefOptions{})
	if err != nil || pinned.Digest != one.String() || pinned.Tag != "" {
		t.Fatalf("ParseRef(pinned) = %+v, %v", pinned, err)
	}
	ps, tag, err := OpenStore(context.Background(), pinned, StoreOptions{Keychain: authn.NewMultiKeychain(), Retry: fastRetry})
	if err != nil || tag != "" {
		t.Fatalf("OpenStore(pinned) tag %q, %v", tag, err)
	}
	if _, _, got, err := ps.GetManifest(context.Background(), pinned.Reference()); err != nil || got != one {
		t.Errorf("GetManifest(pinned) = %s, %v; want %s", got, err, one)
	}

	s2 := openTestRegistry(t, reg.Host, "cache/skip", StoreOptions{})
	a := newTestArtifact(t, randomBlob(t, 1<<20), randomBlob(t, 1000))
	before := len(reg.Requests(t, "PUT", "/blobs/uploads/"))
	if _, skipped := a.push(t, s2, "v1"); skipped != 0 {
		t.Errorf("first push skipped %d blobs", skipped)
	}
	if got := len(reg.Requests(t, "PUT", "/blobs/uploads/")) - before; got != 3 {
		t.Errorf("first push completed %d uploads, want 3 (config, 2 layers)", got)
	}
	// A fresh store (a re-run) skips every blob: HEAD, no upload.
	s3 := openTestRegistry(t, reg.Host, "cache/skip", StoreOptions{})
	if _, skipped := a.push(t, s3, "v1"); skipped != 3 {
		t.Errorf("re-push skipped %d blobs, want 3", skipped)
	}
	if got := len(reg.Requests(t, "PUT", "/blobs/uploads/")) - before; got != 3 {
		t.Errorf("after re-push %d uploads in total, want still 3", got)
	}
	if got := len(reg.Requests(t, "POST", "/blobs/uploads/")); got == 0 {
		t.Error("access log shows no upload starts: is the log being read?")
	}
}

// TestRegistrySkopeoCrossCheck: skopeo, an independent client, reads what
// the registry store pushed and copies it into an oci: layout our layout
// store reads; and the reverse, a layout we wrote, copied by skopeo into the
// registry, reads back through the registry store unchanged.
func TestRegistrySkopeoCrossCheck(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	skopeo := testenv.RequireTool(t, "skopeo")
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	ctx := context.Background()
	s := openTestRegistry(t, reg.Host, "cache/xcheck", StoreOptions{})
	a := newTestArtifact(t, randomBlob(t, 64<<10))
	d, _ := a.push(t, s, "from-us")

	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(skopeo, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	out := run("inspect", "--raw", "--tls-verify=false", "docker://"+reg.Host+"/cache/xcheck:from-us")
	if !bytes.Equal(bytes.TrimSpace(out), a.manifest) {
		t.Errorf("skopeo read a different manifest from the registry:\n%s", out)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	run("copy", "--quiet", "--src-tls-verify=false", "docker://"+reg.Host+"/cache/xcheck:from-us", "oci:"+dir+":copied")
	l := NewLayoutStore(dir)
	if _, mb, ld, err := l.GetManifest(ctx, "copied"); err != nil || ld != d || !bytes.Equal(mb, a.manifest) {
		t.Fatalf("layout store read of skopeo's copy = %s, %v; want %s", ld, err, d)
	}
	if got := readAll(t, l, a.layers[0].d); !bytes.Equal(got, a.layers[0].data) {
		t.Error("layer differs after registry -> skopeo -> layout")
	}

	// Reverse: our layout -> skopeo -> registry -> registry store.
	src := filepath.Join(t.TempDir(), "ours")
	b := newTestArtifact(t, randomBlob(t, 32<<10))
	bd, _ := b.push(t, NewLayoutStore(src), "snap")
	run("copy", "--quiet", "--dest-tls-verify=false", "oci:"+src+":snap", "docker://"+reg.Host+"/cache/xcheck:from-skopeo")
	if _, mb, rd, err := s.GetManifest(ctx, "from-skopeo"); err != nil || rd != bd || !bytes.Equal(mb, b.manifest) {
		t.Fatalf("registry store read of skopeo's push = %s, %v; want %s", rd, err, bd)
	}
	if got := readAll(t, s, b.layers[0].d); !bytes.Equal(got, b.layers[0].data) {
		t.Error("layer differs after layout -> skopeo -> registry")
	}
}

// TestRegistryUnreachable: a registry nobody listens on fails at once (a
// refused connection is not retried) with the registry named.
func TestRegistryUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	s := openTestRegistry(t, host, "x", StoreOptions{})
	_, err = s.Tags(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listing tags of "+host+"/x") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Tags of an unreachable registry = %v", err)
	}
}

// testHtpasswd is "melcache:s3cret" with bcrypt cost 4 (the minimum, so the
// registry's per-request check stays cheap), made with Python's crypt.
const testHtpasswd = "melcache:$2b$04$VwxwrMn4WTERkyRa75yw1e9poNLwornsihSxs68Dtt6JEhAo/Gr4e\n"

// staticKeychain hands out one username and password for every registry.
type staticKeychain struct{ user, pass string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.pass}), nil
}

// TestRegistryAuth runs against the real registry with htpasswd auth: the
// keychain's credentials are used, and wrong ones give "authentication
// failed for HOST" for pushes and reads alike.
func TestRegistryAuth(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(testHtpasswd), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{ExtraConfig: "auth:\n  htpasswd:\n    realm: melcache-test\n    path: " + htpasswd + "\n"})
	ctx := context.Background()

	good := openTestRegistry(t, reg.Host, "cache/auth", StoreOptions{Keychain: staticKeychain{"melcache", "s3cret"}})
	a := newTestArtifact(t, randomBlob(t, 4096))
	d, _ := a.push(t, good, "v1")
	if got := readAll(t, good, a.layers[0].d); !bytes.Equal(got, a.layers[0].data) {
		t.Fatal("authenticated read-back differs")
	}

	bad := openTestRegistry(t, reg.Host, "cache/auth", StoreOptions{Keychain: staticKeychain{"melcache", "wrong"}})
	want := "authentication failed for " + reg.Host
	b := randomBlob(t, 100)
	if _, err := bad.WriteBlob(ctx, b.d, 100, b.opener(nil)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("WriteBlob with a wrong password = %v, want %q", err, want)
	}
	if _, _, _, err := bad.GetManifest(ctx, "v1"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("GetManifest with a wrong password = %v, want %q", err, want)
	}
	if _, err := bad.ReadBlob(ctx, a.layers[0].d); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ReadBlob with a wrong password = %v, want %q", err, want)
	}
	anon := openTestRegistry(t, reg.Host, "cache/auth", StoreOptions{})
	if _, err := anon.Tags(ctx); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Tags without credentials = %v, want %q", err, want)
	}
	_ = d
}

// TestRegistryConcurrentWrites: one store used by parallel layer uploads
// (as push --jobs does), several writing the same blob: every blob lands,
// and each is uploaded once.
func TestRegistryConcurrentWrites(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	s := openTestRegistry(t, reg.Host, "cache/parallel", StoreOptions{})
	blobs := []testBlob{randomBlob(t, 200<<10), randomBlob(t, 100<<10), randomBlob(t, 1000), randomBlob(t, 10)}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(blobs))
	for range 4 {
		for _, b := range blobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.WriteBlob(context.Background(), b.d, int64(len(b.data)), b.opener(nil)); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, b := range blobs {
		if got := readAll(t, s, b.d); !bytes.Equal(got, b.data) {
			t.Errorf("blob %s differs", b.d)
		}
	}
	if got := len(reg.Requests(t, "PUT", "/blobs/uploads/")); got != len(blobs) {
		t.Errorf("%d uploads completed for %d distinct blobs written 4 times each, want %d", got, len(blobs), len(blobs))
	}
}
