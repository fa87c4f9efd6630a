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
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

func init() { addCommand(newPushCmd) }

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
	c.Flags().StringVar(&f.only, "only", "", "only this cache: gomodcache or gocache (a partial snapshot; a pull leaves the other cache untouched)")
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

// openRef parses REF (empty: the embedded store), opens its store and works
// out the tag from REF or --key. digest is set for a digest-pinned REF.
func (f *snapshotFlags) openRef(ctx context.Context, g *globals, arg string) (s oci.Store, tag, digest string, err error) {
	ko, err := f.keyOptions(ctx)
	if err != nil {
		return nil, "", "", err
	}
	t, err := build.OpenRef(ctx, arg, build.RefOptions{Insecure: f.insecure, CACert: f.caCert, Log: g.log,
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

// pushLong is the help text of `melcache push`.
const pushLong = `push snapshots gomodcache/ and gocache/ of the cache directory as an OCI
artifact (docs/format.md). REF is a registry reference (HOST/REPO[:TAG]),
oci:PATH[:TAG] for an OCI image layout, or nothing for the embedded store under
the user's cache directory. The tag is REF's, or --key's expansion, or "latest".

Only what changed since the snapshot last pushed to or pulled from the same
store is uploaded, as one new layer per cache; an unchanged cache uploads
nothing. GOCACHE entries a running build is still writing are skipped and
counted. Plain HTTP is used only for loopback registries unless --insecure.`

// pushExample are the examples in the help of `melcache push`.
const pushExample = `  melcache push ghcr.io/acme/gocache:main
  melcache push --key 'go-{go}-{arch}-{hash:go.sum}' --config pkg.yaml ghcr.io/acme/gocache
  melcache push oci:/srv/cache-layout:nightly --json
  melcache push                                   # embedded store, tag latest
  melcache push --only gomodcache ghcr.io/acme/gocache:modules   # one module cache for every Go version`

func newPushCmd(g *globals) *cobra.Command {
	var f snapshotFlags
	c := &cobra.Command{
		Use:     "push [REF]",
		Short:   "Snapshot the caches to a registry, an OCI layout or the embedded store",
		Long:    pushLong,
		Example: pushExample,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			limitMemory()
			l, err := f.layout(false)
			if err != nil {
				return err
			}
			s, tag, digest, err := f.openRef(ctx, g, argOr(args))
			if err != nil {
				return err
			}
			if digest != "" {
				return usageErrorf("push needs a tag, not a digest: %s", args[0])
			}
			if tag == "" {
				tag = build.DefaultTag
			}
			o := f.options(ctx, g)
			if o.Only, err = oci.ParseOnly(f.only); err != nil {
				return usageErrorf("%v", err)
			}
			p := f.progress(g)
			o.Progress = p
			res, err := oci.Push(ctx, l, s, tag, o)
			p.Wait()
			if err != nil {
				return err
			}
			return printResult(g.stdout, f.json, res)
		},
	}
	f.register(c, true)
	return c
}
