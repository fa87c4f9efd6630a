package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
)

// ProbeResult is what Probe found out about a store, check by check. An
// empty *Err string means the check passed.
type ProbeResult struct {
	// Store names the store.
	Store string `json:"store"`
	// Registry is the registry host ("" for OCI layouts).
	Registry string `json:"registry,omitempty"`
	// Scheme is "https" or "http"; SchemeErr says why plain HTTP is refused.
	Scheme    string `json:"scheme,omitempty"`
	SchemeErr string `json:"schemeError,omitempty"`
	// Credentials says where credentials come from ("none: anonymous" when
	// the keychain has none for the registry).
	Credentials    string `json:"credentials,omitempty"`
	CredentialsErr string `json:"credentialsError,omitempty"`
	// Reachable is false when the registry could not be reached at all;
	// ReachErr says why.
	Reachable bool   `json:"reachable"`
	ReachErr  string `json:"reachError,omitempty"`
	// AuthErr is set when the registry refused the credentials (or their
	// absence).
	AuthErr string `json:"authError,omitempty"`
	// Tags counts the tags listed; RepoMissing is set when the repository
	// does not exist yet (the first push creates it).
	Tags        int  `json:"tags"`
	RepoMissing bool `json:"repoMissing,omitempty"`
}

// Probe checks that a store can be used, without changing it: for a
// registry, that the scheme is allowed (plain HTTP only to loopback or with
// Insecure), which credentials the keychain holds for it, that it answers,
// and that it accepts the credentials for listing the repository's tags
// (the read a pull starts with). For an OCI layout it lists its tags.
func Probe(ctx context.Context, ref Ref, o StoreOptions) *ProbeResult {
	res := &ProbeResult{}
	s, _, err := OpenStore(ctx, ref, o)
	if err != nil {
		res.ReachErr = err.Error()
		return res
	}
	res.Store = s.String()
	if ref.Kind == RefRegistry {
		reg := ref.Repo.Registry
		res.Registry = reg.RegistryStr()
		res.Scheme = reg.Scheme()
		insecure := o.Insecure || ref.Insecure
		if res.Scheme == "http" && !insecure && !IsLoopbackHost(hostOnly(reg.RegistryStr())) {
			res.SchemeErr = (&PlainHTTPError{Host: reg.RegistryStr()}).Error()
		}
		kc := o.Keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		a, err := kc.Resolve(ref.Repo)
		switch {
		case err != nil:
			res.CredentialsErr = fmt.Sprintf("reading credentials for %s: %v", res.Registry, err)
		case a == authn.Anonymous:
			res.Credentials = "none for " + res.Registry + ": anonymous access"
		default:
			cfg, err := a.Authorization()
			switch {
			case err != nil:
				res.CredentialsErr = fmt.Sprintf("credentials for %s: %v", res.Registry, err)
			case cfg.IdentityToken != "" || cfg.RegistryToken != "":
				res.Credentials = "a token for " + res.Registry
			default:
				res.Credentials = fmt.Sprintf("user %q for %s", cfg.Username, res.Registry)
			}
		}
	}
	tags, err := s.Tags(ctx)
	var phe *PlainHTTPError
	switch {
	case err == nil:
		res.Reachable, res.Tags = true, len(tags)
	case errors.As(err, &phe):
		res.SchemeErr = phe.Error()
	case strings.Contains(err.Error(), "authentication failed"):
		res.Reachable, res.AuthErr = true, err.Error()
	case errors.Is(err, ErrNotFound):
		res.Reachable, res.RepoMissing = true, true
	case isUnreachable(err):
		res.ReachErr = err.Error()
	default:
		res.Reachable, res.ReachErr = true, err.Error()
	}
	return res
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// isUnreachable tells network failures (refused, DNS, timeouts) from
// answers.
func isUnreachable(err error) bool {
	var ne net.Error
	var de *net.DNSError
	var oe *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.As(err, &de) || errors.As(err, &oe) ||
		(errors.As(err, &ne) && ne.Timeout())
}
