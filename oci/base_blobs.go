package oci

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// BlobMounter is a Store that can make a blob another repository of the
// same registry holds present in itself without uploading it: the
// distribution spec's cross-repository blob mount. The registry store
// implements it; layouts do not need it (a base lives in the same layout).
type BlobMounter interface {
	Store
	// Registry names the registry, "host[:port]": mounts and siblings
	// stay within it.
	Registry() string
	// Sibling opens the repository "host[:port]/path" of the same
	// registry, with this store's transport and credentials; another
	// registry or a malformed name is an error.
	Sibling(repository string) (BlobMounter, error)
	// MountBlob asks the registry to make blob d of repository from
	// present here. mounted is false when the registry declined (the
	// caller uploads the blob instead).
	MountBlob(ctx context.Context, d v1.Hash, from BlobMounter) (mounted bool, err error)
}

// baseBlobs counts how the base blobs a push keeps got into its store.
type baseBlobs struct {
	present int   // already there
	mounted int   // mounted from the base's repository
	copied  int   // uploaded from the base's repository (mount declined)
	bytes   int64 // compressed bytes copied
}

// reusedDescriptors are the base blobs a delta lists in its manifest: the
// data layers the plan keeps and the base's index documents.
func reusedDescriptors(kept []LayerInfo, b *Snapshot) []v1.Descriptor {
	out := make([]v1.Descriptor, 0, len(kept)+len(b.Config.Indexes))
	for _, li := range kept {
		out = append(out, v1.Descriptor{MediaType: types.MediaType(LayerMediaType), Digest: li.Digest, Size: compressedSize(li, nil, b)})
	}
	// A delta's index chain starts with the base's documents.
	return append(out, b.IndexLayers()...)
}

// ensureBlobs makes the base blobs descs present in to. From the same
// store it only checks them (a missing one means a full push). From
// another repository of the same registry it mounts each missing blob
// and, when the registry declines, uploads it from there: the bytes
// stream through, and the registry checks their digest. ok is false when
// a blob could not be made present; the push then goes full.
func ensureBlobs(ctx context.Context, to, from Store, descs []v1.Descriptor, jobs int, log *slog.Logger) (baseBlobs, bool) {
	var present, mounted, copied atomic.Int64
	var copiedBytes atomic.Int64
	tm, _ := to.(BlobMounter)
	fm, _ := from.(BlobMounter)
	cross := from != to
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, d := range descs {
		g.Go(func() error {
			if has, err := to.HasBlob(gctx, d.Digest); err != nil {
				return err
			} else if has {
				present.Add(1)
				return nil
			}
			if !cross {
				return fmt.Errorf("%s lacks base blob %s", to, d.Digest)
			}
			if tm != nil && fm != nil {
				done, err := tm.MountBlob(gctx, d.Digest, fm)
				if err != nil {
					return err
				}
				if done {
					mounted.Add(1)
					return nil
				}
				log.Debug("registry declined a blob mount; uploading the blob", "digest", d.Digest.String(), "from", from.String())
			}
			if _, err := to.WriteBlob(gctx, d.Digest, d.Size, func() (io.ReadCloser, error) { return from.ReadBlob(gctx, d.Digest) }); err != nil {
				return err
			}
			copied.Add(1)
			copiedBytes.Add(d.Size)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		log.Warn("the base's blobs cannot be made present; pushing a full snapshot", "store", to.String(), "base store", from.String(), "err", err)
		return baseBlobs{}, false
	}
	return baseBlobs{present: int(present.Load()), mounted: int(mounted.Load()), copied: int(copied.Load()), bytes: copiedBytes.Load()}, true
}
