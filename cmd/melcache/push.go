package main

import (
	"github.com/spf13/cobra"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/oci"
)

func init() { addCommand(newPushCmd) }

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
			if err := f.checkConfig(); err != nil {
				return err
			}
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
