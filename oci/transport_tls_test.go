package oci

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/melcache/melcache/internal/testenv"
)

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its key.
func selfSignedCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "melcache test registry"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certPath, keyPath
}

// TestInsecureSkipsTLSVerify: the real registry over TLS with a self-signed
// certificate is refused by default (with the registry named), and reached
// with --insecure, as crane --insecure does.
func TestInsecureSkipsTLSVerify(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	cert, key := selfSignedCert(t, t.TempDir())
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{HTTPExtra: "  tls:\n    certificate: " + cert + "\n    key: " + key + "\n"})
	ctx := context.Background()

	s := openTestRegistry(t, reg.Host, "cache/tls", StoreOptions{})
	_, err := s.Tags(ctx)
	if err == nil || !strings.Contains(err.Error(), "listing tags of "+reg.Host+"/cache/tls") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Tags over TLS with an untrusted certificate = %v, want a certificate error naming the registry", err)
	}

	ref, err := ParseRef(reg.Host+"/cache/tls", RefOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	is, _, err := OpenStore(ctx, ref, StoreOptions{Keychain: authn.NewMultiKeychain(), Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	a := newTestArtifact(t, randomBlob(t, 1000))
	d, _ := a.push(t, is, "v1")
	if _, _, got, err := is.GetManifest(ctx, "v1"); err != nil || got != d {
		t.Fatalf("GetManifest with --insecure over TLS = %s, %v", got, err)
	}
	// Plain HTTP was never used: the registry only speaks TLS, and every
	// request above succeeded.
}
