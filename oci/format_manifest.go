package oci

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/melcache/melcache/mount"
)

// Validation of a snapshot's manifest and config (docs/format.md,
// "Manifest" and "Config"); checkIndex in format.go checks the index.

// parseManifest checks that b is a melcache snapshot manifest of a format
// this code reads: its first layers are index documents, the rest data
// layers. checkConfig matches the count of each against the config.
func parseManifest(mediaType string, b []byte) (*v1.Manifest, error) {
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if mediaType != "" && mediaType != string(types.OCIManifestSchema1) {
		return nil, fmt.Errorf("not a melcache snapshot: manifest media type %s", mediaType)
	}
	f, ok := formatOf(&m)
	if !ok {
		return nil, fmt.Errorf("not a melcache snapshot: artifactType %q, want %s (or version 1's %s)", m.ArtifactType, ArtifactType, artifactTypeV1)
	}
	if m.Config.MediaType != types.MediaType(f.config) {
		return nil, fmt.Errorf("not a melcache snapshot: config media type %s, want %s", m.Config.MediaType, f.config)
	}
	if len(m.Layers) == 0 || m.Layers[0].MediaType != types.MediaType(f.index) {
		return nil, fmt.Errorf("snapshot manifest: first layer is not an index (%s)", f.index)
	}
	k := indexLayerCount(&m)
	for i, l := range m.Layers[k:] {
		if l.MediaType != LayerMediaType {
			return nil, fmt.Errorf("snapshot manifest: layer %d has media type %s, want %s", k+i, l.MediaType, LayerMediaType)
		}
	}
	if m.Config.Size > maxConfigBytes {
		return nil, fmt.Errorf("snapshot config is %d bytes, over the %d limit", m.Config.Size, maxConfigBytes)
	}
	return &m, nil
}

// indexLayerCount is the number of index layers heading a parsed manifest.
func indexLayerCount(m *v1.Manifest) int {
	f, _ := formatOf(m)
	k := 0
	for k < len(m.Layers) && m.Layers[k].MediaType == types.MediaType(f.index) {
		k++
	}
	return k
}

// dataLayerCount is the number of data layers of a parsed manifest.
func dataLayerCount(m *v1.Manifest) int { return len(m.Layers) - indexLayerCount(m) }

// checkConfig validates the config against the manifest.
func checkConfig(c *Config, m *v1.Manifest) error {
	if f, _ := formatOf(m); c.FormatVersion != f.version {
		return fmt.Errorf("snapshot format version %d in a version %d manifest; this melcache reads versions 1 and %d", c.FormatVersion, f.version, FormatVersion)
	}
	if err := checkCaches(c.Caches); err != nil {
		return err
	}
	k := len(c.Indexes)
	if k == 0 || k > maxIndexChain || k != indexLayerCount(m) {
		return fmt.Errorf("snapshot config lists %d index documents, manifest %d (1 to %d allowed)", k, indexLayerCount(m), maxIndexChain)
	}
	var total int64
	for i, x := range c.Indexes {
		if x.Digest != m.Layers[i].Digest {
			return fmt.Errorf("snapshot config names index %d %s, manifest %s", i, x.Digest, m.Layers[i].Digest)
		}
		total += x.Size
		if x.Size < 0 || x.Entries < 0 || x.Size > maxIndexBytes || total > maxIndexBytes {
			return fmt.Errorf("snapshot index declares %d bytes (chain %d), over the %d limit", x.Size, total, maxIndexBytes)
		}
	}
	if len(c.Layers) != len(m.Layers)-k {
		return fmt.Errorf("snapshot config lists %d data layers, manifest %d", len(c.Layers), len(m.Layers)-k)
	}
	gens := map[layerKey]bool{}
	for i, l := range c.Layers {
		if l.Digest != m.Layers[k+i].Digest {
			return fmt.Errorf("snapshot config layer %d is %s, manifest says %s", i, l.Digest, m.Layers[k+i].Digest)
		}
		if _, ok := mount.LookupCache(string(l.Cache)); !ok || !c.Holds(l.Cache) {
			return fmt.Errorf("snapshot layer %s restores into unknown cache %q", l.Digest, l.Cache)
		}
		if l.Generation < 0 || l.Generation > maxLayerGeneration {
			return fmt.Errorf("snapshot layer %s: generation %d out of range", l.Digest, l.Generation)
		}
		if l.Size < 0 || l.Files < 0 {
			return fmt.Errorf("snapshot layer %s: negative size or file count", l.Digest)
		}
		if gens[layerKey{l.Cache, l.Generation}] {
			return fmt.Errorf("snapshot config: two %s layers of generation %d", l.Cache, l.Generation)
		}
		gens[layerKey{l.Cache, l.Generation}] = true
		if c.FormatVersion >= 2 {
			if err := checkFrames(l, m.Layers[k+i].Size); err != nil {
				return err
			}
		}
	}
	return nil
}

// layerKey names a data layer within a config: (cache, generation).
type layerKey struct {
	c   mount.Cache
	gen int
}

// checkCaches refuses a caches list with a name not in the cache registry,
// twice, or out of registry order, or an empty one.
func checkCaches(cs []mount.Cache) error {
	if len(cs) == 0 {
		return fmt.Errorf("snapshot config: no caches")
	}
	next := 0 // registry position the next name may take
	profiles := mount.Profiles()
	for _, c := range cs {
		if _, ok := mount.LookupCache(string(c)); !ok {
			return fmt.Errorf("snapshot config: unknown cache %q in caches (melcache knows %s)", c, mount.CacheNames())
		}
		for next < len(profiles) && profiles[next].Name != c {
			next++
		}
		if next == len(profiles) {
			return fmt.Errorf("snapshot config: caches %s out of order or repeated", joinCaches(cs))
		}
		next++
	}
	return nil
}

// checkFrames checks a version 2 layer's frame table against its tar size
// and its blob size (blobSize, from the manifest).
func checkFrames(l LayerInfo, blobSize int64) error {
	if l.FrameSize <= 0 || l.FrameSize > maxFrameSize {
		return fmt.Errorf("snapshot layer %s: frameSize %d (1 to %d allowed)", l.Digest, l.FrameSize, maxFrameSize)
	}
	want := max(1, (l.Size+l.FrameSize-1)/l.FrameSize)
	if int64(len(l.Frames)) != want {
		return fmt.Errorf("snapshot layer %s: %d frames for %d tar bytes, want %d", l.Digest, len(l.Frames), l.Size, want)
	}
	var sum int64
	for _, n := range l.Frames {
		if n <= 0 {
			return fmt.Errorf("snapshot layer %s: a frame of %d bytes", l.Digest, n)
		}
		if n > blobSize-sum { // checked before adding: no overflow
			return fmt.Errorf("snapshot layer %s: frames total more than the blob's %d bytes", l.Digest, blobSize)
		}
		sum += n
	}
	if sum != blobSize {
		return fmt.Errorf("snapshot layer %s: frames total %d bytes, the blob is %d", l.Digest, sum, blobSize)
	}
	return nil
}

// maxLayerGeneration bounds a config's layer generations: a push makes
// MaxGeneration()+1, which must not overflow onto a kept layer's.
const maxLayerGeneration = 1 << 31
