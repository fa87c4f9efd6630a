package build

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/oci"
)

// apkIndexTimeout bounds the fetch of one remote APKINDEX: a key must not
// hang a CI job on a slow mirror; the error then says how to pin Go.
const apkIndexTimeout = 30 * time.Second

// GoVersionOptions say where the Go version of a build comes from.
type GoVersionOptions struct {
	// Pin is a version given on the command line (--go); it wins.
	Pin string
	// Config is the melange YAML: its Go package, pinned (go-1.26,
	// go~1.26, go=1.26.8-r0) or not, and its environment.contents.repositories.
	Config string
	// Repositories are melange's --repository-append (-r) values; they are
	// read before the config's.
	Repositories []string
	// Arch is the index's architecture in melange's naming; "" is the
	// host's.
	Arch string
	// Client fetches remote indexes; nil means one with apkIndexTimeout.
	Client *http.Client
}

// GoResolver works out the Go minor version ("1.26") a melange build uses,
// once: from Pin, else the version the config's Go package pins, else for
// an unpinned go the highest go in the APKINDEX of the repositories melange
// will use (local directories read directly, remote ones fetched once).
// The zero value is not usable; see NewGoResolver.
type GoResolver struct {
	o    GoVersionOptions
	once sync.Once
	v    string
	err  error
}

// NewGoResolver returns a resolver; nothing is read until Version.
func NewGoResolver(o GoVersionOptions) *GoResolver { return &GoResolver{o: o} }

// Version returns the Go minor version, resolving it on the first call.
// Its errors are one line naming the config and saying how to pin Go.
func (r *GoResolver) Version(ctx context.Context) (string, error) {
	r.once.Do(func() { r.v, r.err = r.resolve(ctx) })
	return r.v, r.err
}

// KeyFunc is Version as oci.KeyOptions.Go wants it.
func (r *GoResolver) KeyFunc(ctx context.Context) func() (string, error) {
	return func() (string, error) { return r.Version(ctx) }
}

func (r *GoResolver) resolve(ctx context.Context) (string, error) {
	if r.o.Pin != "" {
		return ParseGoVersion(r.o.Pin)
	}
	if r.o.Config == "" {
		return "", usageErrorf("{go} needs --config YAML (the melange file that installs Go) or --go VERSION")
	}
	cfg, err := envinject.ReadConfig(r.o.Config)
	if err != nil {
		return "", err
	}
	if cfg.Go == nil {
		return "", fmt.Errorf("%s: installs no go package (go or go-1.NN) and uses no go/build or go/install step, so {go} has no value; give --go VERSION", r.o.Config)
	}
	if cfg.Go.Version != "" {
		return cfg.Go.Version, nil
	}
	repos := append(append([]string(nil), r.o.Repositories...), cfg.Contents.Repositories...)
	v, why := r.fromIndexes(ctx, repos)
	if v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%s:%d:%d: %s pins no version and %s; pin it: --go 1.NN, or go-1.NN in environment.contents.packages",
		r.o.Config, cfg.Go.Line, cfg.Go.Col, cfg.Go.Spec, why)
}

// fromIndexes returns the highest go version in the repositories' indexes
// as a minor version, or "" and why none was found.
func (r *GoResolver) fromIndexes(ctx context.Context, repos []string) (string, string) {
	if len(repos) == 0 {
		return "", "no apk repository is given (--repository-append, environment.contents.repositories) to read it from"
	}
	arch := r.o.Arch
	if arch == "" {
		arch = oci.HostArch()
	}
	client := r.o.Client
	if client == nil {
		client = &http.Client{Timeout: apkIndexTimeout}
	}
	ir := indexReader{arch: arch, client: client}
	best := ""
	var problems []string
	for _, repo := range repos {
		repo = repositoryPath(repo)
		v, err := ir.goVersion(ctx, repo)
		switch {
		case err != nil:
			problems = append(problems, err.Error()) // names the file or URL
		case v != "":
			best = maxAPKVersion(best, v)
		}
	}
	if best != "" {
		if m := goMinor.FindStringSubmatch(best); m != nil {
			return m[1], ""
		}
		return "", fmt.Sprintf("the apk index has go %s, not a Go version", best)
	}
	if len(problems) > 0 {
		return "", "no APKINDEX could be read (" + strings.Join(problems, "; ") + ")"
	}
	return "", fmt.Sprintf("no apk index (%s) has a go package for %s", strings.Join(repos, ", "), arch)
}

// repositoryPath drops an apk repository tag ("@local /path" is /path).
func repositoryPath(repo string) string {
	if strings.HasPrefix(repo, "@") {
		if _, p, ok := strings.Cut(repo, " "); ok {
			return strings.TrimSpace(p)
		}
	}
	return repo
}

// goMinor is the Go minor version at the start of a version: "1.26" in
// 1.26, 1.26.8, 1.26.8-r0, 1.27rc1.
var goMinor = regexp.MustCompile(`^([0-9]+\.[0-9]+)(?:$|[.\-_a-z])`)

// ParseGoVersion reads a --go value: 1.26, 1.26.8, go1.26.8, go-1.26 or
// 1.26.8-r0 all give "1.26". Anything else is a *UsageError.
func ParseGoVersion(s string) (string, error) {
	v := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "go"), "-")
	if m := goMinor.FindStringSubmatch(v); m != nil {
		return m[1], nil
	}
	return "", &UsageError{Flag: "--go", Err: fmt.Errorf("%q is not a Go version (want e.g. 1.26)", s)}
}
