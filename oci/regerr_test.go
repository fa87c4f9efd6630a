package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TestTranslateRegistryErrors: each kind of registry failure comes out as
// one plain line naming the thing at fault, and still unwraps to what
// callers test for.
func TestTranslateRegistryErrors(t *testing.T) {
	refused := func(scheme string) error {
		return &url.Error{Op: "Get", URL: scheme + "://h:5/v2/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://h:5/v2/acme/x/manifests/nope", nil)
	unknown := &transport.Error{StatusCode: 404, Request: req, Errors: []transport.Diagnostic{{Code: transport.ManifestUnknownErrorCode, Message: "manifest unknown", Detail: map[string]any{"Tag": "nope"}}}}
	denied := &transport.Error{StatusCode: 401, Request: req, Errors: []transport.Diagnostic{{Code: transport.UnauthorizedErrorCode, Message: "authentication required"}}}
	broken := &transport.Error{StatusCode: 500, Request: req}
	for _, tc := range []struct {
		name       string
		op, thing  string
		notFound   string
		err        error
		want       string
		wantIs     error
		wantUnwrap any
	}{
		{"refused on both schemes", "", "h:5/acme/x:t", "no such tag", errors.Join(refused("https"), refused("http")),
			"registry h:5: connection refused", syscall.ECONNREFUSED, nil},
		{"refused, with the operation", "listing tags of", "h:5/acme/x", "", fmt.Errorf("wrapped: %w", refused("http")),
			"listing tags of h:5/acme/x: registry h:5: connection refused", syscall.ECONNREFUSED, nil},
		{"retries exhausted", "pushing blob to", "h:5/acme/x", "", &gaveUpError{err: refused("http"), attempts: 5},
			"pushing blob to h:5/acme/x: registry h:5: connection refused (gave up after 5 attempts)", nil, nil},
		{"no such host", "", "nohost.invalid/x:t", "no such tag", &url.Error{Op: "Get", URL: "https://nohost.invalid/v2/", Err: &net.DNSError{Err: "no such host", Name: "nohost.invalid", IsNotFound: true}},
			"registry h:5: no such host", nil, nil},
		{"timeout", "", "h:5/x:t", "no such tag", &url.Error{Op: "Get", URL: "https://h:5/v2/", Err: os.ErrDeadlineExceeded},
			"registry h:5: timed out", nil, nil},
		{"missing tag", "", "h:5/acme/x:nope", "no such tag", unknown,
			"h:5/acme/x:nope: no such tag", ErrNotFound, nil},
		{"missing blob keeps its context", "pulling blob from", "h:5/acme/x", "", fmt.Errorf("blob sha256:ab: %w", unknown),
			"pulling blob from h:5/acme/x: blob sha256:ab: not found", ErrNotFound, nil},
		{"refused credentials", "pushing to", "h:5/acme/x", "", denied,
			"pushing to h:5/acme/x: authentication failed for h:5 (check docker login or the credential helper)", nil, &transport.Error{}},
		{"server error", "listing tags of", "h:5/acme/x", "", broken,
			"listing tags of h:5/acme/x: registry h:5 answered 500 Internal Server Error", nil, nil},
		{"not a registry error", "listing tags of", "h:5/acme/x", "", context.Canceled,
			"listing tags of h:5/acme/x: context canceled", context.Canceled, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := translate("h:5", tc.op, tc.thing, tc.notFound, tc.err)
			if err.Error() != tc.want {
				t.Errorf("got  %q\nwant %q", err, tc.want)
			}
			for _, noise := range []string{"map[", "Get \"", "GET ", "MANIFEST_UNKNOWN", "dial tcp", "; "} {
				if strings.Contains(err.Error(), noise) {
					t.Errorf("%q contains %q", err, noise)
				}
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("%v does not unwrap to %v", err, tc.wantIs)
			}
			var te *transport.Error
			if tc.wantUnwrap != nil && !errors.As(err, &te) {
				t.Errorf("%v does not unwrap to the *transport.Error", err)
			}
		})
	}
}
