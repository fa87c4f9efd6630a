package oci

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RefKind says which kind of store a reference names.
type RefKind int

const (
	// RefRegistry is a registry repository: host/repo[:tag|@sha256:...].
	RefRegistry RefKind = iota + 1
	// RefLayout is an OCI image layout directory: oci:PATH[:TAG][@sha256:...].
	RefLayout
	// RefEmbedded is the embedded layout under the user's cache directory,
	// named by the empty reference.
	RefEmbedded
)

// String names the kind for messages.
func (k RefKind) String() string {
	switch k {
	case RefRegistry:
		return "registry"
	case RefLayout:
		return "oci layout"
	case RefEmbedded:
		return "embedded store"
	}
	return fmt.Sprintf("RefKind(%d)", int(k))
}

// LayoutPrefix introduces an OCI image layout reference, as skopeo and oras
// spell it: "oci:PATH[:TAG]".
const LayoutPrefix = "oci:"

// dockerPrefix is skopeo's registry transport prefix, accepted and dropped.
const dockerPrefix = "docker://"

// embeddedSubdir is where the embedded store lives under os.UserCacheDir:
// next to Go's own caches (~/.cache/go-build), owned by the user, and
// removable like any cache.
const embeddedSubdir = "melcache/store"

// RefOptions configure ParseRef.
type RefOptions struct {
	// Insecure allows plain HTTP (and unverified TLS) to a registry that is
	// not on loopback. Without it, plain HTTP is refused before connecting
	// to anything but 127.0.0.0/8, ::1 and localhost.
	Insecure bool
	// EmbeddedRoot is the directory of the embedded store used for the empty
	// reference; "" means os.UserCacheDir()/melcache/store. Tests set it.
	EmbeddedRoot string
}

// Ref is a parsed store reference. The zero Ref is not valid; use ParseRef.
type Ref struct {
	// Kind says which store the reference names.
	Kind RefKind
	// Raw is the reference as the user wrote it ("" for the embedded store).
	Raw string
	// Repo is the registry repository (RefRegistry only).
	Repo name.Repository
	// Path is the layout directory (RefLayout and RefEmbedded), absolute.
	Path string
	// Tag is the tag the reference names, "" when it names none. No
	// default "latest" is invented: the snapshot logic picks its key.
	Tag string
	// Digest is the manifest digest a digest-pinned reference names
	// ("sha256:<hex>"), "" otherwise. A reference may carry both a tag and
	// a digest ("host/repo:tag@sha256:..."); the digest then wins for reads.
	Digest string
	// Insecure records RefOptions.Insecure for OpenStore's network policy.
	Insecure bool
}

// String renders the reference for messages: "127.0.0.1:5000/x:tag",
// "oci:/path:tag", "embedded store /home/u/.cache/melcache/store".
func (r Ref) String() string {
	var s string
	switch r.Kind {
	case RefRegistry:
		s = r.Repo.String()
	case RefLayout:
		s = LayoutPrefix + r.Path
	case RefEmbedded:
		s = "embedded store " + r.Path
		if r.Tag != "" {
			s += " tag " + r.Tag
		}
		if r.Digest != "" {
			s += " digest " + r.Digest
		}
		return s
	default:
		return "invalid reference"
	}
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Reference returns the tag or digest to read: the digest when pinned,
// else the tag ("" when the reference names neither).
func (r Ref) Reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// refSyntax is appended to parse errors so a user sees every accepted form.
const refSyntax = "want a registry reference HOST/REPO[:TAG|@sha256:HEX], oci:PATH[:TAG] for an OCI image layout, or nothing for the embedded store"

// ParseRef parses a store reference:
//
//   - "" is the embedded store (o.EmbeddedRoot, default
//     os.UserCacheDir()/melcache/store);
//   - "oci:PATH[:TAG][@sha256:HEX]" is an OCI image layout directory; as in
//     skopeo, the path ends at its first colon;
//   - anything else is a registry reference host/repo[:tag][@sha256:hex],
//     parsed by go-containerregistry's name package (so "repo" alone means
//     Docker Hub, as with crane and docker); skopeo's "docker://" prefix
//     is accepted.
//
// A digest-pinned reference keeps its digest in Ref.Digest.
func ParseRef(s string, o RefOptions) (Ref, error) {
	r := Ref{Raw: s, Insecure: o.Insecure}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		root := o.EmbeddedRoot
		if root == "" {
			dir, err := os.UserCacheDir()
			if err != nil {
				return Ref{}, fmt.Errorf("embedded store: no user cache directory (set XDG_CACHE_HOME or HOME, or name a store): %w", err)
			}
			root = filepath.Join(dir, filepath.FromSlash(embeddedSubdir))
		}
		abs, err := filepath.Abs(root)
		if err != nil {
			return Ref{}, fmt.Errorf("embedded store %s: %w", root, err)
		}
		r.Kind, r.Path = RefEmbedded, abs
		return r, nil

	case strings.HasPrefix(s, LayoutPrefix):
		rest := s[len(LayoutPrefix):]
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			d := rest[i+1:]
			if _, err := v1.NewHash(d); err != nil {
				return Ref{}, fmt.Errorf("invalid reference %q: digest %q: %v", s, d, err)
			}
			r.Digest, rest = d, rest[:i]
		}
		path, tag, hasTag := strings.Cut(rest, ":")
		if hasTag {
			if err := checkTag(tag); err != nil {
				return Ref{}, fmt.Errorf("invalid reference %q: %v", s, err)
			}
			r.Tag = tag
		}
		if path == "" {
			return Ref{}, fmt.Errorf("invalid reference %q: empty layout path; %s", s, refSyntax)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return Ref{}, fmt.Errorf("invalid reference %q: %w", s, err)
		}
		r.Kind, r.Path = RefLayout, abs
		return r, nil
	}

	// skopeo's transport prefix, as users paste it from skopeo commands.
	base := strings.TrimPrefix(s, dockerPrefix)
	if i := strings.LastIndex(base, "@"); i >= 0 {
		d := base[i+1:]
		if _, err := v1.NewHash(d); err != nil {
			return Ref{}, fmt.Errorf("invalid reference %q: digest %q: %v", s, d, err)
		}
		r.Digest, base = d, base[:i]
	}
	if i := strings.LastIndex(base, ":"); i > strings.LastIndex(base, "/") {
		tag := base[i+1:]
		if err := checkTag(tag); err != nil {
			return Ref{}, fmt.Errorf("invalid reference %q: %v", s, err)
		}
		r.Tag, base = tag, base[:i]
	}
	repo, err := name.NewRepository(base)
	if err != nil {
		return Ref{}, fmt.Errorf("invalid reference %q: %v; %s", s, err, refSyntax)
	}
	// go-containerregistry checks characters only: "ghcr.io//bad" or
	// "ghcr.io/-x" would go to the network and come back as a registry's
	// puzzling answer. Refuse them here, naming the reference.
	if err := checkRegistry(repo.RegistryStr()); err != nil {
		return Ref{}, fmt.Errorf("invalid reference %q: %v; %s", s, err, refSyntax)
	}
	if err := checkRepository(repo.RepositoryStr()); err != nil {
		return Ref{}, fmt.Errorf("invalid reference %q: %v; %s", s, err, refSyntax)
	}
	if o.Insecure || IsLoopbackHost(registryHost(repo.RegistryStr())) {
		// name.Insecure lets ggcr fall back to plain HTTP. Set only where
		// our rule allows it; ggcr alone would fall back for private
		// ranges and *.localhost too, but not for all of 127.0.0.0/8.
		// The transport enforces the rule on every request regardless.
		if repo, err = name.NewRepository(base, name.Insecure); err != nil {
			return Ref{}, fmt.Errorf("invalid reference %q: %v; %s", s, err, refSyntax)
		}
	}
	r.Kind, r.Repo = RefRegistry, repo
	return r, nil
}

// registryHost strips the port from a registry's host[:port].
func registryHost(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// repoComponent is one path component of a repository name, as the OCI
// distribution spec writes it: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
var repoComponent = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
})

// hostLabel is one DNS label of a registry host name (letters, digits,
// inner hyphens).
var hostLabel = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$`)
})

// checkRepository enforces the distribution spec's repository grammar:
// "/"-separated components, none empty, each starting and ending with a
// lowercase letter or digit, separated inside by '.', '_', '__' or '-'s.
func checkRepository(repo string) error {
	for i, c := range strings.Split(repo, "/") {
		switch {
		case c == "" && i == 0:
			return fmt.Errorf("repository %q starts with '/' (an empty path component after the host)", repo)
		case c == "":
			return fmt.Errorf("repository %q has an empty path component", repo)
		case !repoComponent().MatchString(c):
			return fmt.Errorf("repository %q: component %q is not allowed (lowercase letters and digits, separated by '.', '_', '__' or '-')", repo, c)
		}
	}
	return nil
}

// checkRegistry checks a registry's host[:port]: DNS labels or an IP
// address, and a port from 1 to 65535.
func checkRegistry(hostport string) error {
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("registry %q: port %q is not a number from 1 to 65535", hostport, port)
		}
	}
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return nil
	}
	for _, l := range strings.Split(host, ".") {
		if !hostLabel().MatchString(l) {
			return fmt.Errorf("registry %q: %q is not a valid host name", hostport, host)
		}
	}
	return nil
}

// maxTagLen is the OCI distribution spec's limit on tag length.
const maxTagLen = 128

// checkTag enforces the tag grammar [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
func checkTag(tag string) error {
	if tag == "" {
		return fmt.Errorf("empty tag after the colon")
	}
	if len(tag) > maxTagLen {
		return fmt.Errorf("tag %q is longer than %d characters", tag, maxTagLen)
	}
	for i, c := range tag {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			i > 0 && (c == '.' || c == '-')
		if !ok {
			return fmt.Errorf("tag %q: character %q at offset %d is not allowed (tags match [A-Za-z0-9_][A-Za-z0-9._-]*)", tag, c, i)
		}
	}
	return nil
}

// StoreOptions configure OpenStore and the stores.
type StoreOptions struct {
	// Insecure allows plain HTTP and unverified TLS to any registry; it is
	// also set by a Ref parsed with RefOptions.Insecure.
	Insecure bool
	// Keychain finds registry credentials; nil means authn.DefaultKeychain
	// (~/.docker/config.json and its credential helpers, then
	// REGISTRY_AUTH_FILE, then podman's auth.json).
	Keychain authn.Keychain
	// Transport is the HTTP transport under melcache's network policy and
	// retries; nil means a fresh http.Transport. Tests use it to record
	// requests without connecting.
	Transport http.RoundTripper
	// CACert names a PEM file of CA certificates trusted for the
	// registry's TLS certificate in addition to the system roots (which
	// SSL_CERT_FILE and SSL_CERT_DIR already extend): a private registry
	// behind an internal CA, without turning verification off. Ignored
	// when Transport is set.
	CACert string
	// Retry tunes retries of transient registry failures.
	Retry RetryPolicy
	// Timeouts bound a silent registry (TimeoutsFromEnv reads them from
	// the environment); zero fields mean the defaults.
	Timeouts Timeouts
	// Logger receives retries and resumes at debug level; nil discards.
	Logger *slog.Logger
}

func (o StoreOptions) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// OpenStore returns the store a reference names and the tag it names ("" when
// none, or when it is pinned by digest only: see ref.Digest). It does not
// connect: errors about the registry surface on the first call.
func OpenStore(ctx context.Context, ref Ref, o StoreOptions) (Store, string, error) {
	switch ref.Kind {
	case RefRegistry:
		o.Insecure = o.Insecure || ref.Insecure
		s, err := NewRegistryStore(ref.Repo, o)
		if err != nil {
			return nil, "", fmt.Errorf("opening %s: %w", ref, err)
		}
		return s, ref.Tag, nil
	case RefLayout:
		return NewLayoutStore(ref.Path), ref.Tag, nil
	case RefEmbedded:
		return NewEmbeddedStore(ref.Path), ref.Tag, nil
	}
	return nil, "", fmt.Errorf("opening %q: not a parsed reference (use ParseRef)", ref.Raw)
}
