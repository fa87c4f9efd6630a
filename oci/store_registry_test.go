package oci

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
)

// fastRetry keeps retry tests quick; the back-off shape is the same.
var fastRetry = RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func openTestRegistry(t *testing.T, host, repo string, o StoreOptions) *RegistryStore {
	t.Helper()
	r, err := ParseRef(host+"/"+repo, RefOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Keychain == nil {
		o.Keychain = authn.NewMultiKeychain() // anonymous; never the user's credentials
	}
	if o.Retry == (RetryPolicy{}) {
		o.Retry = fastRetry
	}
	s, _, err := OpenStore(context.Background(), r, o)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*RegistryStore)
}

// TestRegistryStoreGGCR runs the store contract against ggcr's in-process
// registry (fast, in RAM; the real registry test is below).
func TestRegistryStoreGGCR(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	s := openTestRegistry(t, strings.TrimPrefix(srv.URL, "http://"), "cache/unit", StoreOptions{})
	testStoreContract(t, s, true)
}

func TestRegistryTagsOfMissingRepo(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s := openTestRegistry(t, host, "never/pushed", StoreOptions{})
	_, err := s.Tags(context.Background())
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), host+"/never/pushed") {
		t.Errorf("Tags of a missing repo = %v, want ErrNotFound naming the repo", err)
	}
}

// TestRegistryAuthFailure: a registry that refuses our credentials gives
// "authentication failed for HOST".
func TestRegistryAuthFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s := openTestRegistry(t, host, "x", StoreOptions{})
	b := randomBlob(t, 10)
	_, err := s.WriteBlob(context.Background(), b.d, 10, b.opener(nil))
	if err == nil || !strings.Contains(err.Error(), "authentication failed for "+host) {
		t.Errorf("WriteBlob to a refusing registry = %v, want \"authentication failed for %s\"", err, host)
	}
	_, err = s.Tags(context.Background())
	if err == nil || !strings.Contains(err.Error(), "authentication failed for "+host) {
		t.Errorf("Tags on a refusing registry = %v", err)
	}
}

// TestRegistryDeleteUnsupported: distribution answers 405 UNSUPPORTED when
// deletes are disabled (its default).
func TestRegistryDeleteUnsupported(t *testing.T) {
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			w.Write([]byte(`{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`))
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s := openTestRegistry(t, strings.TrimPrefix(srv.URL, "http://"), "x", StoreOptions{})
	a := newTestArtifact(t, randomBlob(t, 10))
	d, _ := a.push(t, s, "t")
	err := s.DeleteManifest(context.Background(), d)
	if !errors.Is(err, ErrDeleteUnsupported) || !strings.Contains(err.Error(), s.String()) {
		t.Errorf("DeleteManifest = %v, want ErrDeleteUnsupported naming the repo", err)
	}
}
