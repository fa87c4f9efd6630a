package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/oci"
	"github.com/spf13/cobra"
)

func init() { addCommand(newPullCmd) }

// pullLong is the help text of `melcache pull`.
const pullLong = `pull restores the caches a snapshot holds (gomodcache/, gocache/, and
melange's other caches it was pushed with; --only picks some) into the cache
directory; the other caches and every other file in DIR are left as they are.
REF is a registry reference (HOST/REPO[:TAG|@sha256:...]), oci:PATH[:TAG] for
an OCI image layout, or nothing for the embedded store. With --restore-keys,
when REF's tag does not exist, the newest snapshot whose tag starts with the
first matching prefix is used, and pull says which.

By default the snapshot is merged over the local caches (the snapshot wins;
local-only files stay); --replace gives exactly the snapshot. Files already
present are reused, only layers holding missing files are downloaded, every
file is verified (npm, pip, maven and fetch-cache files also by their own
format: one bad file refuses the whole pull, changing nothing), and the new
state is swapped in atomically: an interrupted
pull leaves the old caches, and the next command finishes or rolls it back.
A missing DIR is created, but not its parents (as prepare), and only once the
snapshot is found; a pull that fails removes the DIR it created.
Restored entries are marked used two hours ago and trim.txt is reset, so Go
keeps them.

With --missing-ok, a store that holds no matching snapshot yet (no such tag,
no restore-key match, an empty or missing repository or layout) is the first
run of a key: pull prints one notice, changes nothing and exits 0, so a
set -e CI script goes on to build cold and push. Every other failure still
exits 1.`

// pullExample are the examples in the help of `melcache pull`.
const pullExample = `  melcache pull ghcr.io/acme/gocache:main
  melcache pull --key 'go-{go}-{arch}-{hash:go.sum}' --config pkg.yaml \
      --restore-keys 'go-{go}-{arch}-' ghcr.io/acme/gocache
  melcache pull oci:/srv/cache-layout:nightly --replace
  melcache pull --require-digest ghcr.io/acme/gocache@sha256:4f1c...   # pinned
  melcache pull --missing-ok --key 'go-{go}-{arch}' --config pkg.yaml \
      --restore-keys 'go-{go}-' ghcr.io/acme/gocache      # first CI run: exit 0
  melcache pull                                   # embedded store, tag latest
  melcache pull --only gomodcache ghcr.io/acme/gocache:modules   # gocache/ is left as it is
  melcache pull --only npm ghcr.io/acme/cache:main               # npm/ alone`

func newPullCmd(g *globals) *cobra.Command {
	var fl pullFlags
	c := &cobra.Command{
		Use:     "pull [REF]",
		Short:   "Restore the caches from a snapshot",
		Long:    pullLong,
		Example: pullExample,
		Args:    cobra.MaximumNArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runPull(cmd, g, &fl, args) },
	}
	fl.register(c, false)
	c.Flags().BoolVar(&fl.replace, "replace", false, "make the caches exactly the snapshot (default: merge)")
	c.Flags().BoolVar(&fl.requireDigest, "require-digest", false, "refuse a REF without @sha256:<digest> (pin the exact snapshot; see docs/security.md)")
	c.Flags().BoolVar(&fl.missingOK, "missing-ok", false, "exit 0 with a notice when no snapshot matches (a first run): nothing is restored")
	return c
}

// pullFlags are the flags of the command runPull runs.
type pullFlags struct {
	snapshotFlags
	replace       bool
	requireDigest bool
	missingOK     bool
}

// runPull runs the command with its flags and prints the result.
func runPull(cmd *cobra.Command, g *globals, f *pullFlags, args []string) error {
	ctx := cmd.Context()
	limitMemory()
	if err := f.checkConfig(); err != nil {
		return err
	}
	s, tag, digest, err := f.openRef(ctx, g, argOr(args))
	if err != nil {
		return err
	}
	if f.requireDigest && digest == "" {
		// A tag is whatever the last pusher made it; only a
		// digest names content (docs/security.md).
		return usageErrorf("--require-digest: %q names no digest: pin it as REPO@sha256:<digest> (melcache ls shows digests)", argOr(args))
	}
	if f.requireDigest && len(f.restoreKeys) > 0 {
		return usageErrorf("--require-digest: --restore-keys would pick a snapshot by tag prefix; give a pinned REPO@sha256:<digest> only")
	}
	keys, err := f.expandRestoreKeys(ctx)
	if err != nil {
		return err
	}
	ref := tag
	if digest != "" {
		ref = digest
	}
	if ref == "" && len(keys) == 0 {
		ref = build.DefaultTag
	}
	l, err := f.layout(true)
	if err != nil {
		return err
	}
	o := f.options(ctx, g)
	o.Replace, o.RestoreKeys = f.replace, keys
	if o.Only, err = oci.ParseOnly(f.only); err != nil {
		return usageErrorf("%v", err)
	}
	p := f.progress(g)
	o.Progress = p
	res, err := oci.Pull(ctx, l, s, ref, o)
	p.Wait()
	if f.missingOK && errors.Is(err, oci.ErrNotFound) {
		return printMissing(g, f.json, s, ref, keys)
	}
	if err != nil {
		return err
	}
	return printResult(g.stdout, f.json, res)
}

// missingResult is pull --missing-ok --json's output when nothing matched.
type missingResult struct {
	Missing     bool     `json:"missing"`
	Store       string   `json:"store"`
	Tag         string   `json:"tag,omitempty"`
	RestoreKeys []string `json:"restoreKeys,omitempty"`
}

// printMissing reports a pull that found no snapshot under --missing-ok:
// one notice line on stderr (and the JSON object with --json).
func printMissing(g *globals, asJSON bool, s oci.Store, ref string, keys []string) error {
	what := "no snapshot " + ref
	if ref == "" {
		what = "no snapshot"
	}
	if len(keys) > 0 {
		what += " and none matching --restore-keys " + strings.Join(keys, ",")
	}
	fmt.Fprintf(g.stderr, "melcache: %s in %s: nothing restored (--missing-ok); the build starts cold\n", what, s)
	if !asJSON {
		return nil
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(missingResult{Missing: true, Store: s.String(), Tag: ref, RestoreKeys: keys})
}
