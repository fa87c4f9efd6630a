package main

import (
	"strings"

	"github.com/melcache/melcache/mount"
	"github.com/spf13/cobra"
)

func init() { addCommand(newBuildCmd) }

// buildFlags are the flags of `melcache build`; build.Run runs the steps.
type buildFlags struct {
	dir           string
	pull          string
	restoreKeys   []string
	push          string
	key           string
	goVersion     string
	melange       string
	strict        bool
	rewrite       bool
	force         bool
	pushOnFailure bool
	preload       bool
	offline       bool
	set           []string
	json          bool
	insecure      bool
	caCert        string
	noWait        bool
	cacheProg     bool
	cacheProgBin  string
}

// buildLong is the help text of `melcache build`.
const buildLong = `build wraps 'melange build CONFIG --cache-dir DIR' with everything around it:

  1. prepare DIR (gomodcache/, gocache/, owned by you);
  2. --pull REF: restore the snapshot (a missing tag with no restore-key match
     is a cold start, not an error);
  3. --preload: download the modules the config builds (for no-network builds);
  4. mark the build cache, to count hits and misses;
  5. point Go at the caches: an --env-file with GOMODCACHE and GOCACHE under
     /var/cache/melange (default), or with --rewrite a temporary rewritten
     copy of CONFIG; CONFIG itself is never edited;
  6. run melange, holding the cache lock shared, with SIGINT and SIGTERM
     forwarded to it;
  7. report compile actions run and reused (GOCACHE entries whose output is
     a compiled package), bookkeeping entries apart (module index, other),
     modules downloaded during the build, bytes added and time (a table,
     or --json);
  8. --push REF: push the delta, only when melange succeeded (unless
     --push-on-failure).

melange's YAML environment wins over env-files: when CONFIG sets GOMODCACHE
or GOCACHE itself, build says which value the build really uses;
--rewrite --force overrides it for this build.

A cache problem (registry down, failed verification, unwritable DIR) warns
and the build runs cold; with --strict it fails (exit 1) before melange runs,
or after it for the push. Arguments after -- go to melange: --arch feeds the
key's {arch}; --runner qemu without QEMU_USE_VIRTIOFS=1 gets a warning (the
qemu runner discards cache writes); a --cache-dir other than DIR is a usage
error.

The melange binary is --melange, else $MELANGE, else melange from PATH.
Exit status: melange's own (128+N when it died of signal N); 1 when melcache
failed before running it (or --strict and a cache problem); 2 usage.`

// buildExample are the examples in the help of `melcache build`.
const buildExample = `  melcache build pkg.yaml -- --arch x86_64
  melcache build pkg.yaml --dir ./melange-cache \
      --pull ghcr.io/acme/gocache --key 'pkg-{arch}-{hash:go.sum}' --restore-keys 'pkg-{arch}-' \
      --push ghcr.io/acme/gocache -- --arch x86_64 --runner bubblewrap
  melcache build pkg.yaml --preload --offline --json     # no network in the build
  melcache build pkg.yaml --rewrite --force              # override the YAML's own GOCACHE`

func newBuildCmd(g *globals) *cobra.Command {
	var f buildFlags
	c := &cobra.Command{
		Use:     "build CONFIG.yaml [flags] [-- melange build flags]",
		Short:   "Run melange build with warm Go caches: restore, build, report, push",
		Long:    buildLong,
		Example: buildExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() == 0 || len(args) == 0 {
				return usageErrorf("build needs the melange config: melcache build CONFIG.yaml [-- melange flags]")
			}
			if at := cmd.ArgsLenAtDash(); (at < 0 && len(args) > 1) || at > 1 {
				return usageErrorf("build takes one config; put melange's arguments after --: %q", strings.Join(args[1:], " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runBuild(cmd, g, &f, args) },
	}
	c.Flags().StringVar(&f.dir, "dir", mount.DefaultDir, "cache directory (given to melange as --cache-dir)")
	_ = c.MarkFlagDirname("dir")
	c.Flags().StringVar(&f.pull, "pull", "", "restore this snapshot first: HOST/REPO[:TAG], oci:PATH[:TAG]")
	c.Flags().StringSliceVar(&f.restoreKeys, "restore-keys", nil, "tag prefixes to fall back to when the pull tag is missing, and to pick the push's delta base from (templates; repeat or comma-separate)")
	c.Flags().StringVar(&f.push, "push", "", "push the delta after a successful build: HOST/REPO[:TAG], oci:PATH[:TAG]")
	c.Flags().StringVar(&f.key, "key", "", "tag template for --pull and --push REFs without a tag: {arch}, {go}, {hash:FILE} (FILE relative to the source dir)")
	c.Flags().StringVar(&f.goVersion, "go", "", goFlagUsage)
	c.Flags().StringVar(&f.melange, "melange", "", "melange binary (default $MELANGE, then melange from PATH)")
	c.Flags().BoolVar(&f.strict, "strict", false, "fail on a cache problem instead of warning and building cold")
	c.Flags().BoolVar(&f.rewrite, "rewrite", false, "pass melange a temporary rewritten copy of CONFIG instead of an env-file")
	c.Flags().BoolVar(&f.force, "force", false, "with --rewrite: replace the YAML's own GOMODCACHE/GOCACHE for this build")
	c.Flags().BoolVar(&f.pushOnFailure, "push-on-failure", false, "push even when melange fails")
	c.Flags().BoolVar(&f.preload, "preload", false, "download the modules CONFIG builds into DIR/gomodcache before the build")
	c.Flags().BoolVar(&f.offline, "offline", false, "also set GOPROXY=off, GOTOOLCHAIN=local, GOFLAGS=-mod=mod in the build")
	c.Flags().StringArrayVar(&f.set, "set", nil, "extra KEY=VALUE for the build's environment (repeatable)")
	c.Flags().BoolVar(&f.json, "json", false, "print the report as JSON (melange's stdout then goes to stderr)")
	c.Flags().BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and unverified TLS to a registry that is not on loopback")
	c.Flags().StringVar(&f.caCert, caCertFlag, "", caCertUsage)
	c.Flags().BoolVar(&f.cacheProg, "cacheprog", false, "serve the guest's Go build cache through GOCACHEPROG and a socket in DIR/.melcache (bubblewrap runner; see docs/cacheprog.md)")
	c.Flags().StringVar(&f.cacheProgBin, "cacheprog-binary", "", "with --cacheprog: the guest's forwarder, a CGO_ENABLED=0 melcache for its arch (default: this binary when it is one)")
	c.Flags().BoolVar(&f.noWait, "no-wait", false, "fail at once, naming the holder, when another process holds the cache lock")
	return c
}
