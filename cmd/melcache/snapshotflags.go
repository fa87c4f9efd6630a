package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// snapshotFlags are the flags push and pull share.
type snapshotFlags struct {
	dir      string
	jobs     int
	compact  bool
	insecure bool
	caCert   string
	json     bool
	key      string
	config   string
	goVer    *build.GoResolver
	goPin    string
	isPush   bool // push records the Go version in the snapshot
	noWait   bool
	only     string
	// restoreKeys are tag-prefix templates (build.ExpandRestoreKeys): a
	// pull's fallbacks, a push's base candidates.
	restoreKeys []string
}

func (f *snapshotFlags) register(c *cobra.Command, push bool) {
	f.isPush = push
	c.Flags().StringVar(&f.dir, "dir", mount.DefaultDir, "cache directory (melange's --cache-dir)")
	c.Flags().IntVarP(&f.jobs, "jobs", "j", 0, "parallel hashing and transfers (0: number of CPUs)")
	if push {
		c.Flags().BoolVar(&f.compact, "compact", false, "repack everything into one layer per cache")
	}
	c.Flags().BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	c.Flags().StringVar(&f.caCert, caCertFlag, "", caCertUsage)
	c.Flags().BoolVar(&f.json, "json", false, "print a JSON summary")
	c.Flags().StringVar(&f.key, "key", "", "tag template: {arch}, {go} (needs --config or --go), {hash:FILE} (relative to --config's directory)")
	c.Flags().StringVar(&f.config, "config", "", "melange YAML that {go} reads (its Go package and repositories)")
	c.Flags().StringVar(&f.goPin, "go", "", goFlagUsage)
	c.Flags().BoolVar(&f.noWait, "no-wait", false, "fail instead of waiting when the cache directory is locked")
	restoreUsage := "tag prefixes to fall back to, in order (repeat or comma-separate)"
	if push {
		restoreUsage = "tag prefixes to pick the delta base from when this dir exchanged no snapshot with the repository, in order (repeat or comma-separate)"
	}
	c.Flags().StringSliceVar(&f.restoreKeys, "restore-keys", nil, restoreUsage)
	c.Flags().StringVar(&f.only, "only", "", "only these caches, comma-separated: "+mount.AllCacheNames()+" (a partial snapshot; a pull leaves the other caches untouched)")
}

// transferMemoryLimit is the Go heap soft limit during push and pull: the
// transfer streams and needs ~50 MB live, but with GOGC's default the heap
// may grow to twice that between collections; a soft limit keeps the peak
// RSS near 100 MB on a 1 GB cache (docs/benchmarks.md) at a small GC cost.
// GOMEMLIMIT in the environment overrides it.
const transferMemoryLimit = 80 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(transferMemoryLimit)
	}
}

// caCertFlag names a PEM file of extra trusted CAs for a registry behind a
// private CA; SSL_CERT_FILE works too, but replaces the system roots.
const (
	caCertFlag  = "ca-cert"
	caCertUsage = "PEM file of CA certificates to trust for the registry, besides the system roots"
)

// goFlagUsage describes --go, the way to pin {go} when the config's go
// package is unpinned and no apk index can be read.
const goFlagUsage = "the Go minor version the build uses, for {go} and the snapshot (e.g. 1.26; default: the config's go package, else the apk index)"

// goResolver is the one Go version resolver of the command: an apk index
// is read at most once. A bad --go is a usage error.
func (f *snapshotFlags) goResolver() (*build.GoResolver, error) {
	if f.goVer == nil {
		if f.goPin != "" {
			if _, err := build.ParseGoVersion(f.goPin); err != nil {
				return nil, usageErrorf("%v", err)
			}
		}
		f.goVer = build.NewGoResolver(build.GoVersionOptions{Pin: f.goPin, Config: f.config})
	}
	return f.goVer, nil
}

// checkConfig refuses a malformed --config, with its file:line:col, even
// when --key does not read it ({hash:FILE} only, or push recording the Go
// version): push and pull call it first, before the cache dir or the store
// is looked at, so bad input is reported as such.
func (f *snapshotFlags) checkConfig() error {
	if f.config == "" {
		return nil
	}
	_, err := envinject.ReadConfig(f.config)
	return err
}

// openRef parses REF (empty: the embedded store), opens its store and works
// out the tag from REF or --key. digest is set for a digest-pinned REF.
func (f *snapshotFlags) openRef(ctx context.Context, g *globals, arg string) (s oci.Store, tag, digest string, err error) {
	ko, err := f.keyOptions(ctx)
	if err != nil {
		return nil, "", "", err
	}
	to, err := netTimeouts()
	if err != nil {
		return nil, "", "", err
	}
	t, err := build.OpenRef(ctx, arg, build.RefOptions{Insecure: f.insecure, CACert: f.caCert, Timeouts: to, Log: g.log,
		Key: f.key, KeyOptions: ko})
	var ue *build.UsageError
	if errors.As(err, &ue) {
		return nil, "", "", usageErrorf("%v", ue.Err)
	}
	if err != nil {
		return nil, "", "", err
	}
	return t.Store, t.Tag, t.Digest, nil
}

// keyOptions expand --key and --restore-keys: {hash:FILE} is relative to
// --config's directory when one is given, else to the current directory.
func (f *snapshotFlags) keyOptions(ctx context.Context) (oci.KeyOptions, error) {
	r, err := f.goResolver()
	if err != nil {
		return oci.KeyOptions{}, err
	}
	o := oci.KeyOptions{Config: f.config, Go: r.KeyFunc(ctx)}
	if f.config != "" {
		o.Dir = filepath.Dir(f.config)
	}
	return o, nil
}

// expandRestoreKeys expands --restore-keys with the parser pull and build
// share. Prefixes are templates too, but not cut to a tag: a prefix may
// end in '-'.
func (f *snapshotFlags) expandRestoreKeys(ctx context.Context) ([]string, error) {
	ko, err := f.keyOptions(ctx)
	if err != nil {
		return nil, err
	}
	return build.ExpandRestoreKeys(f.restoreKeys, ko)
}

// progress returns bars on a terminal stderr unless --json or --quiet; the
// caller must Wait on it after the transfer.
func (f *snapshotFlags) progress(g *globals) *progressBars {
	return newTransferBars(g, f.json)
}

func (f *snapshotFlags) options(ctx context.Context, g *globals) oci.Options {
	o := oci.Options{Jobs: f.jobs, Compact: f.compact, Log: g.log,
		LockOptions: lockWaitOptions(g, f.dir, f.noWait)}
	if r, err := f.goResolver(); err == nil && f.isPush && (f.config != "" || f.goPin != "") {
		// Recorded when known; an unknown version is "", not a failure.
		o.GoVersion, _ = r.Version(ctx)
	}
	return o
}

// layout returns the cache dir's layout. missingOK lets the dir not exist
// yet (pull creates it, but only once the snapshot has been fetched and
// checked, so a refused pull leaves no empty dir behind).
func (f *snapshotFlags) layout(missingOK bool) (mount.Layout, error) {
	l, err := mount.New(f.dir, mount.Options{})
	if err != nil {
		return l, err
	}
	if fi, err := os.Stat(l.Dir); err != nil {
		if !missingOK || !os.IsNotExist(err) {
			return l, fmt.Errorf("cache directory %s: %w", l.Dir, err)
		}
	} else if !fi.IsDir() {
		return l, fmt.Errorf("cache directory %s: not a directory", l.Dir)
	}
	return l, nil
}
