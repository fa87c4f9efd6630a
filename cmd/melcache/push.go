package main

import (
	"github.com/spf13/cobra"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/oci"
)

func init() { addCommand(newPushCmd) }

// pushLong is the help text of `melcache push`.
const pushLong = `push snapshots the caches of the cache directory as an OCI artifact
(docs/format.md): gomodcache/ and gocache/, and each of melange's other
caches that is present (npm/, pip/, uv/, composer/, m2repository/, and the
fetch cache's DIR/sha256:* and sha512:* files; docs/caches.md). --only
names the caches to push. REF is a registry reference (HOST/REPO[:TAG]),
oci:PATH[:TAG] for an OCI image layout, or nothing for the embedded store under
the user's cache directory. The tag is REF's, or --key's expansion, or "latest".

Only what changed against a base snapshot is uploaded, as one new layer per
cache; an unchanged cache uploads nothing. The base is, in order: --base REF;
else the newest snapshot this dir pushed or pulled in the same repository,
under any tag; else the newest tag matching --restore-keys; else the newest
snapshot this dir exchanged with another repository of the same registry,
whose layers the registry then mounts instead of receiving them again
(docs/format.md, "Deltas: choosing the base"). --json says which rule chose
(baseRule) and how many blobs were mounted (blobsMounted).

GOCACHE entries a running build is still writing are skipped and
counted, and so are files of the other caches that their own format says
are bad (an npm tarball that is not its integrity, a fetch file that is not
its digest), with a warning naming each. Plain HTTP is used only for loopback registries unless --insecure.`

// pushExample are the examples in the help of `melcache push`.
const pushExample = `  melcache push ghcr.io/acme/gocache:main
  melcache push --key 'go-{go}-{arch}-{hash:go.sum}' --config pkg.yaml ghcr.io/acme/gocache
  melcache push --key 'go-{go}-{arch}-{hash:go.sum}' --config pkg.yaml \
      --restore-keys 'go-{go}-{arch}-' ghcr.io/acme/gocache   # a new key deltas against the newest match
  melcache push --base main ghcr.io/acme/gocache:pr-42       # delta against :main
  melcache push --base ghcr.io/acme/base-cache:main ghcr.io/acme/gocache:main   # layers mounted from another repository
  melcache push oci:/srv/cache-layout:nightly --json
  melcache push                                   # embedded store, tag latest
  melcache push --only gomodcache ghcr.io/acme/gocache:modules   # one module cache for every Go version
  melcache push --only npm ghcr.io/acme/cache:npm                # npm's cache alone`

func newPushCmd(g *globals) *cobra.Command {
	var f snapshotFlags
	var base string
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
			if base != "" {
				if _, err := oci.ParseBase(base); err != nil {
					return usageErrorf("%v", err)
				}
			}
			if o.RestoreKeys, err = f.expandRestoreKeys(ctx); err != nil {
				return err
			}
			o.Base = base
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
	c.Flags().StringVar(&base, "base", "", "delta base: a TAG or @sha256:DIGEST in REF's repository, or HOST/REPO:TAG|@sha256:DIGEST in another repository of the same registry")
	return c
}
