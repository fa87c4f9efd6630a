package oci

import (
	"context"
	"sort"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxChain bounds how far Inspect follows base annotations: compaction
// happens past 8 generations, so a longer chain is history, not structure.
const maxChain = 64

// Listing is one snapshot in a store, as ls shows it.
type Listing struct {
	Tag     string    `json:"tag"`
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
	// Files is the number of files (from the manifest annotation).
	Files int `json:"files"`
	// Size is the sum of the compressed layer sizes (what a cold pull
	// downloads).
	Size   int64 `json:"size"`
	Layers int   `json:"layers"`
	// Error is set for a tag that is not a readable snapshot.
	Error string `json:"error,omitempty"`
}

// List lists the snapshots in s from their manifests alone (no blob is
// read), newest first.
func List(ctx context.Context, s Store) ([]Listing, error) {
	tags, err := s.Tags(ctx)
	if err != nil {
		return nil, nameStore(s, "listing tags of", err)
	}
	out := make([]Listing, 0, len(tags))
	for _, t := range tags {
		m, d, err := manifestOf(ctx, s, t)
		if err != nil {
			out = append(out, Listing{Tag: t, Digest: d.String(), Error: err.Error()})
			continue
		}
		li := Listing{Tag: t, Digest: d.String(), Layers: dataLayerCount(m)}
		li.Created, _ = time.Parse(time.RFC3339, m.Annotations[AnnotationCreated])
		li.Files, _ = strconv.Atoi(m.Annotations[AnnotationFiles])
		for _, l := range m.Layers {
			li.Size += l.Size
		}
		out = append(out, li)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// LayerReport describes one data layer for inspect.
type LayerReport struct {
	LayerInfo
	// Compressed is the blob size.
	Compressed int64 `json:"compressed"`
	// LiveFiles and LiveBytes count the files the index takes from this
	// layer: what it restores.
	LiveFiles int   `json:"liveFiles"`
	LiveBytes int64 `json:"liveBytes"`
}

// ChainLink is one snapshot in a generation chain.
type ChainLink struct {
	Digest  string    `json:"digest"`
	Created time.Time `json:"created,omitempty"`
	Key     string    `json:"key,omitempty"`
	// Missing is set when the store no longer holds the manifest.
	Missing bool `json:"missing,omitempty"`
}

// Report is what inspect shows about a snapshot.
type Report struct {
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
	Config      *Config           `json:"config"`
	// Indexes are the index chain's documents, oldest first.
	Indexes    []v1.Descriptor `json:"indexes"`
	IndexFiles int             `json:"indexFiles"`
	IndexDirs  int             `json:"indexDirs"`
	Layers     []LayerReport   `json:"layers"`
	// Chain is this snapshot and its bases, newest first.
	Chain []ChainLink `json:"chain"`
}

// Inspect reads a snapshot and describes its layers, what each restores and
// its chain of base snapshots.
func Inspect(ctx context.Context, s Store, tagOrDigest string) (*Report, error) {
	snap, err := FetchSnapshot(ctx, s, tagOrDigest)
	if err != nil {
		return nil, err
	}
	r := &Report{Digest: snap.Digest.String(), Annotations: snap.Manifest.Annotations, Config: snap.Config,
		Indexes: snap.IndexLayers()}
	for i, li := range snap.Config.Layers {
		r.Layers = append(r.Layers, LayerReport{LayerInfo: li, Compressed: snap.DataLayer(i).Size})
	}
	for _, e := range snap.Index.Entries {
		if e.Type == TypeDir {
			r.IndexDirs++
			continue
		}
		r.IndexFiles++
		r.Layers[e.Layer].LiveFiles++
		r.Layers[e.Layer].LiveBytes += e.Size
	}
	r.Chain = append(r.Chain, link(snap.Digest.String(), snap.Manifest.Annotations))
	base := snap.Manifest.Annotations[AnnotationBase]
	for i := 0; base != "" && i < maxChain; i++ {
		m, _, err := manifestOf(ctx, s, base)
		if err != nil {
			r.Chain = append(r.Chain, ChainLink{Digest: base, Missing: true})
			break
		}
		r.Chain = append(r.Chain, link(base, m.Annotations))
		base = m.Annotations[AnnotationBase]
	}
	return r, nil
}

func link(d string, a map[string]string) ChainLink {
	c := ChainLink{Digest: d, Key: a[AnnotationKey]}
	c.Created, _ = time.Parse(time.RFC3339, a[AnnotationCreated])
	return c
}
