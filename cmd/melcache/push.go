package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
	"github.com/spf13/cobra"
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
	noWait   bool
	only     string
}

func (f *snapshotFlags) register(c *cobra.Command, push bool) {
	c.Flags().StringVar(&f.dir, "dir", mount.DefaultDir, "cache directory (melange's --cache-dir)")
	c.Flags().IntVarP(&f.jobs, "jobs", "j", 0, "parallel hashing and transfers (0: number of CPUs)")
	if push {
		c.Flags().BoolVar(&f.compact, "compact", false, "repack everything into one layer per cache")
	}
	c.Flags().BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	c.Flags().StringVar(&f.caCert, caCertFlag, "", caCertUsage)
	c.Flags().BoolVar(&f.json, "json", false, "print a JSON summary")
	c.Flags().StringVar(&f.key, "key", "", "tag template: {arch}, {go} (needs --config), {hash:FILE}")
	c.Flags().StringVar(&f.config, "config", "", "melange YAML that {go} reads (environment.contents.packages)")
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

// defaultTag is used when neither REF nor --key names a tag.
const defaultTag = "latest"

// openRef parses REF (empty: the embedded store), opens its store and works
// out the tag from REF or --key. digest is set for a digest-pinned REF.
func (f *snapshotFlags) openRef(ctx context.Context, g *globals, arg string) (s oci.Store, tag, digest string, err error) {
	ref, err := oci.ParseRef(arg, oci.RefOptions{Insecure: f.insecure})
	if err != nil {
		return nil, "", "", usageErrorf("%v", err)
	}
	so, err := storeOptions(f.insecure, f.caCert, g.log)
	if err != nil {
		return nil, "", "", err
	}
	s, tag, err = oci.OpenStore(ctx, ref, so)
	if err != nil {
		return nil, "", "", err
	}
	if f.key != "" {
		if tag != "" || ref.Digest != "" {
			return nil, "", "", usageErrorf("%s already names a tag or digest; --key sets the tag: give the repository only", arg)
		}
		if tag, err = f.expand(f.key); err != nil {
			return nil, "", "", usageErrorf("%v", err)
		}
	}
	return s, tag, ref.Digest, nil
}

func (f *snapshotFlags) expand(tpl string) (string, error) {
	return oci.ExpandKey(tpl, oci.KeyOptions{Config: f.config})
}

// progress returns bars on a terminal stderr unless --json or --quiet; the
// caller must Wait on it after the transfer.
func (f *snapshotFlags) progress(g *globals) *progressBars {
	return newTransferBars(g, f.json)
}

func (f *snapshotFlags) options(g *globals) oci.Options {
	o := oci.Options{Jobs: f.jobs, Compact: f.compact, Log: g.log,
		LockOptions: mount.LockOptions{NoWait: f.noWait, OnWait: func(hs []mount.Holder) {
			g.log.Info("waiting for the cache directory lock", "holders", fmt.Sprint(hs))
		}}}
	if f.config != "" {
		o.GoVersion, _ = oci.GoPackage(f.config)
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

func newPushCmd(g *globals) *cobra.Command {
	var f snapshotFlags
	c := &cobra.Command{
		Use:   "push [REF]",
		Short: "Snapshot the caches to a registry, an OCI layout or the embedded store",
		Long: `push snapshots gomodcache/ and gocache/ of the cache directory as an OCI
artifact (docs/format.md). REF is a registry reference (HOST/REPO[:TAG]),
oci:PATH[:TAG] for an OCI image layout, or nothing for the embedded store under
the user's cache directory. The tag is REF's, or --key's expansion, or "latest".

Only what changed since the snapshot last pushed to or pulled from the same
store is uploaded, as one new layer per cache; an unchanged cache uploads
nothing. GOCACHE entries a running build is still writing are skipped and
counted. Plain HTTP is used only for loopback registries unless --insecure.`,
		Example: `  melcache push ghcr.io/acme/gocache:main
  melcache push --key 'go-{go}-{arch}-{hash:go.sum}' --config pkg.yaml ghcr.io/acme/gocache
  melcache push oci:/srv/cache-layout:nightly --json
  melcache push                                   # embedded store, tag latest
  melcache push --only gomodcache ghcr.io/acme/gocache:modules   # one module cache for every Go version`,
		Args: cobra.MaximumNArgs(1),
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
				tag = defaultTag
			}
			o := f.options(g)
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

func argOr(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func printResult(w io.Writer, asJSON bool, r *oci.Result) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	where := r.Store
	if r.Tag != "" {
		where += ":" + r.Tag
	}
	switch {
	case r.Direction == "push" && r.Unchanged:
		fmt.Fprintf(w, "unchanged: %s@%s (%d files, %s); nothing uploaded\n", where, r.Digest, r.Files, humanBytes(r.Bytes))
	case r.Direction == "push":
		fmt.Fprintf(w, "pushed %s@%s: %d files (%s), %d new layers (%s), %d blobs already there, %.1fs\n",
			where, r.Digest, r.Files, humanBytes(r.Bytes), r.Layers, humanBytes(r.DataBytes), r.BlobsSkipped, r.Seconds)
		if r.Compacted != "" {
			fmt.Fprintf(w, "compacted: %s\n", r.Compacted)
		}
	default:
		fmt.Fprintf(w, "pulled %s@%s (%s): %d files (%s), %d files written from %d layers (%s), %d layers not needed, %.1fs\n",
			where, r.Digest, r.Resolved, r.Files, humanBytes(r.Bytes), r.FilesWritten, r.Layers, humanBytes(r.DataBytes), r.BlobsSkipped, r.Seconds)
	}
	if r.Writing > 0 {
		fmt.Fprintf(w, "skipped %d GOCACHE entries still being written by a build\n", r.Writing)
	}
	if r.Other > 0 {
		fmt.Fprintf(w, "skipped %d entries that are neither files nor directories\n", r.Other)
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
