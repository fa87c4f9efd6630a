package oci

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The registry errors of ggcr and net/http carry library internals: a
// request's method and URL, ggcr's diagnostic details (map[Tag:nope]), and
// for a loopback registry one "Get ..." failure per scheme tried. They are
// translated here, in one place, into one plain line that names the thing
// at fault: the registry for a network failure ("registry H: connection
// refused"), the reference for a missing tag ("R:nope: no such tag"), the
// repository for what the registry answered.

// registryError is a registry failure in plain words. It unwraps to the
// original error and to sentinels (ErrNotFound, ErrDeleteUnsupported), so
// callers still test for them.
type registryError struct {
	msg  string
	errs []error
}

func (e *registryError) Error() string   { return e.msg }
func (e *registryError) Unwrap() []error { return e.errs }

// gaveUpError is the retry transport's last failure.
type gaveUpError struct {
	err      error
	attempts int
}

func (e *gaveUpError) Error() string {
	return fmt.Sprintf("%v (gave up after %d attempts)", e.err, e.attempts)
}
func (e *gaveUpError) Unwrap() error { return e.err }

// translate turns err from operation op ("listing tags of", or "" for
// none) on thing (a repository or a reference) at registry host into a
// plain error. notFound, when set, is the message for a 404 (e.g. "no such
// tag"). A network failure names the registry, after the operation when
// there is one. Errors that are neither the registry's answer nor a
// network failure are named by the operation and kept as they are.
func translate(host, op, thing, notFound string, err error) error {
	what := thing
	if op != "" {
		what = op + " " + thing
	}
	var te *transport.Error
	if errors.As(err, &te) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range te.Errors {
			codes[d.Code] = true
		}
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden ||
			codes[transport.UnauthorizedErrorCode] || codes[transport.DeniedErrorCode]:
			return &registryError{fmt.Sprintf("%s: authentication failed for %s (check docker login or the credential helper)", what, host), []error{err}}
		case te.StatusCode == http.StatusMethodNotAllowed || codes[transport.UnsupportedErrorCode]:
			return &registryError{fmt.Sprintf("%s: %v (enable deletes in the registry, or remove old snapshots with the registry's own tools)", what, ErrDeleteUnsupported),
				[]error{ErrDeleteUnsupported, err}}
		case te.StatusCode == http.StatusNotFound || codes[transport.ManifestUnknownErrorCode] ||
			codes[transport.NameUnknownErrorCode] || codes[transport.BlobUnknownErrorCode]:
			msg := notFound
			if msg == "" {
				msg = ErrNotFound.Error()
			}
			return &registryError{what + ": " + withContext(err, te, msg), []error{ErrNotFound, err}}
		}
		return &registryError{what + ": " + withContext(err, te, "registry "+host+" answered "+answer(te)), []error{err}}
	}
	reason, ok := networkReason(err)
	var stall *TimeoutError
	if errors.As(err, &stall) {
		// A stall of ours already names the registry, what it waited for
		// and the limit (with the variable that changes it).
		reason, ok = stall.Error(), true
	}
	if ok {
		msg := "registry " + host + ": " + reason
		if stall != nil {
			msg = reason
		}
		var g *gaveUpError
		if errors.As(err, &g) {
			msg += fmt.Sprintf(" (gave up after %d attempts)", g.attempts)
		}
		if op != "" {
			msg = what + ": " + msg
		}
		return &registryError{msg, []error{err}}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// withContext replaces te's text in err's message with plain, keeping what
// the wrappers between them say ("blob sha256:...: ").
func withContext(err error, te *transport.Error, plain string) string {
	full, raw := err.Error(), te.Error()
	if i := strings.Index(full, raw); i >= 0 {
		return full[:i] + plain + full[i+len(raw):]
	}
	return plain
}

// answer says what the registry answered, without ggcr's request line and
// details: its diagnostics' messages, else the HTTP status.
func answer(te *transport.Error) string {
	var msgs []string
	for _, d := range te.Errors {
		if d.Message != "" {
			msgs = append(msgs, d.Message)
		} else {
			msgs = append(msgs, strings.ToLower(strings.ReplaceAll(string(d.Code), "_", " ")))
		}
	}
	status := fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
	if len(msgs) == 0 {
		return status
	}
	return status + ": " + strings.Join(msgs, "; ")
}

// networkReason says in plain words why a request did not get an answer:
// the connection was refused, the host is unknown, TLS failed. ok is false
// for an error that is not a network failure (including a context
// cancellation, which the caller reports).
func networkReason(err error) (reason string, ok bool) {
	var (
		pe     *PlainHTTPError
		dnsErr *net.DNSError
		ua     x509.UnknownAuthorityError
		hn     x509.HostnameError
		ci     x509.CertificateInvalidError
		rh     tls.RecordHeaderError
		ue     *url.Error
		ne     net.Error
	)
	switch {
	case errors.As(err, &pe):
		return pe.Error(), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", true
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset", true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host", true
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "no such host", true
		}
		return "DNS lookup failed: " + dnsErr.Err, true
	case errors.As(err, &ua):
		return "TLS: certificate signed by an unknown authority (give --ca-cert FILE, or --insecure)", true
	case errors.As(err, &hn):
		return "TLS: " + hn.Error(), true
	case errors.As(err, &ci):
		return "TLS: " + ci.Error(), true
	case errors.As(err, &rh):
		return "TLS handshake failed: the registry does not speak TLS on this port", true
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out", true
	case errors.As(err, &ue) && errors.As(err, &ne) && ne.Timeout():
		return "timed out", true
	case errors.As(err, &ue):
		return innermost(ue.Err).Error(), true
	}
	return "", false
}

// innermost is the last error of err's chain.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// nameStore names the store s in err, as "OP STORE: err", unless err
// already names it (a registry store's errors do): the same name twice in
// one line is noise.
func nameStore(s Store, op string, err error) error {
	if strings.Contains(err.Error(), s.String()) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, s, err)
}
