package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/melcache/melcache/envinject"
)

// maxTagBytes is the OCI distribution spec's limit on tag length.
const maxTagBytes = 128

// keyHashHex is how many hex digits of a file's SHA-256 {hash:FILE} uses:
// 64 bits tell go.sum versions apart and leave room in a 128-byte tag.
const keyHashHex = 16

// KeyOptions are the inputs of a key template.
type KeyOptions struct {
	// Arch is melange's architecture name; "" means HostArch().
	Arch string
	// Config is a melange YAML file; {go} is the Go version it pins when
	// Go is nil.
	Config string
	// Go returns the Go minor version the build uses ("1.26"); it is
	// called only when the template has {go}. nil means the version
	// Config's Go package pins (build.GoResolver also reads apk indexes).
	Go func() (string, error)
	// Dir is where relative {hash:FILE} paths are resolved; "" means the
	// working directory.
	Dir string
}

var keyVar = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{([a-z]+)(?::([^}]*))?\}`) })

// ExpandKey expands a key template ({arch}, {go}, {hash:FILE}) and sanitises
// the result to the tag grammar ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}).
func ExpandKey(tpl string, o KeyOptions) (string, error) {
	var firstErr error
	out := keyVar().ReplaceAllStringFunc(tpl, func(m string) string {
		sub := keyVar().FindStringSubmatch(m)
		v, err := keyValue(sub[1], sub[2], o)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("key %q: %w", tpl, err)
		}
		return v
	})
	if firstErr != nil {
		return "", firstErr
	}
	if strings.ContainsAny(out, "{}") {
		return "", fmt.Errorf("key %q: unknown or malformed variable (want {arch}, {go} or {hash:FILE})", tpl)
	}
	tag := SanitizeTag(out)
	if tag == "" {
		return "", fmt.Errorf("key %q expands to an empty tag", tpl)
	}
	return tag, nil
}

func keyValue(name, arg string, o KeyOptions) (string, error) {
	switch name {
	case "arch":
		if o.Arch != "" {
			return o.Arch, nil
		}
		return HostArch(), nil
	case "go":
		if o.Go != nil {
			return o.Go()
		}
		if o.Config == "" {
			return "", errors.New("{go} needs --config YAML (the melange file that installs Go) or --go VERSION")
		}
		return PinnedGoVersion(o.Config)
	case "hash":
		if arg == "" {
			return "", errors.New("{hash:FILE} needs a file")
		}
		p := arg
		if !filepath.IsAbs(p) && o.Dir != "" {
			p = filepath.Join(o.Dir, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return "", fmt.Errorf("read %s: %w", p, err)
		}
		return hex.EncodeToString(h.Sum(nil))[:keyHashHex], nil
	}
	return "", fmt.Errorf("unknown variable {%s} (want {arch}, {go} or {hash:FILE})", name)
}

// SanitizeTag maps s into the tag grammar: characters outside [A-Za-z0-9._-]
// become '-', a leading '.' or '-' gets a '_' before it, and the result is
// cut to 128 bytes.
func SanitizeTag(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	t := string(b)
	if t != "" && (t[0] == '.' || t[0] == '-') {
		t = "_" + t
	}
	if len(t) > maxTagBytes {
		t = t[:maxTagBytes]
	}
	return t
}

// PinnedGoVersion returns the Go minor version ("1.26") the Go package of a
// melange YAML pins (go-1.26, go~1.26, go=1.26.8-r0). An unpinned "go" is
// an error saying how to pin it; build.GoResolver reads it from the apk
// repositories instead.
func PinnedGoVersion(path string) (string, error) {
	cfg, err := envinject.ReadConfig(path)
	if err != nil {
		return "", err
	}
	if cfg.Go == nil {
		return "", fmt.Errorf("%s: installs no go package (go or go-1.NN) in environment.contents.packages and uses no go/build or go/install step", path)
	}
	if cfg.Go.Version == "" {
		return "", fmt.Errorf("%s:%d:%d: %s pins no Go version: give --go VERSION (e.g. --go 1.26) or install go-1.NN", path, cfg.Go.Line, cfg.Go.Col, cfg.Go.Spec)
	}
	return cfg.Go.Version, nil
}

// GoPackage returns the name of the Go package a melange YAML builds with,
// e.g. "go-1.26", without any version constraint ("go-1.26=1.26.0-r0"
// gives "go-1.26"): envinject.Config.Go, the one environment.contents.packages
// installs or else the one its go/build or go/install steps install
// themselves ("go" by default).
func GoPackage(path string) (string, error) {
	cfg, err := envinject.ReadConfig(path)
	if err != nil {
		return "", err
	}
	if cfg.Go == nil {
		return "", fmt.Errorf("%s: installs no go package (go or go-1.NN) in environment.contents.packages and uses no go/build or go/install step", path)
	}
	return cfg.Go.Name, nil
}
