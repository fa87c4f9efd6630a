package oci

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/mount"
)

// Version 1 snapshots (docs/format.md, "Reading version 1") are still read:
// pull, inspect, ls, gc and verify take them as a version 2 snapshot whose
// chain is the one index document and whose files have no known position
// (Offset -1). A push never writes them, and one whose base is version 1
// pushes a full version 2 snapshot.

// Version 1 names.
const (
	formatVersion1    = 1
	artifactTypeV1    = "application/vnd.melcache.snapshot.v1"
	configMediaTypeV1 = "application/vnd.melcache.snapshot.config.v1+json"
	indexMediaTypeV1  = "application/vnd.melcache.snapshot.index.v1+json+zstd"
)

// formatNames are one format version's media types.
type formatNames struct {
	version                 int
	artifact, config, index string
}

var formats = []formatNames{
	{FormatVersion, ArtifactType, ConfigMediaType, IndexMediaType},
	{formatVersion1, artifactTypeV1, configMediaTypeV1, indexMediaTypeV1},
}

// formatOf finds the format a manifest declares by its artifactType.
func formatOf(m *v1.Manifest) (formatNames, bool) {
	for _, f := range formats {
		if m.ArtifactType == f.artifact {
			return f, true
		}
	}
	return formatNames{}, false
}

// configV1 is a version 1 config: one index blob, and caches only in a
// partial snapshot.
type configV1 struct {
	FormatVersion int           `json:"formatVersion"`
	Arch          string        `json:"arch"`
	GoVersion     string        `json:"goVersion"`
	Files         int           `json:"files"`
	Size          int64         `json:"size"`
	Index         IndexRef      `json:"index"`
	Layers        []LayerInfo   `json:"layers"`
	Caches        []mount.Cache `json:"caches,omitempty"`
}

// decodeConfig reads a config blob of the manifest's format into a
// version 2 Config.
func decodeConfig(m *v1.Manifest, b []byte) (*Config, error) {
	if f, _ := formatOf(m); f.version == FormatVersion {
		var c Config
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, err
		}
		return &c, nil
	}
	var o configV1
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, err
	}
	if o.FormatVersion != formatVersion1 {
		return nil, fmt.Errorf("snapshot format version %d in a version 1 manifest", o.FormatVersion)
	}
	c := &Config{FormatVersion: o.FormatVersion, Arch: o.Arch, GoVersion: o.GoVersion, Caches: o.Caches,
		Files: o.Files, Size: o.Size, Indexes: []IndexRef{o.Index}, Layers: o.Layers}
	if len(c.Caches) == 0 { // absent: every cache of version 1
		c.Caches = []mount.Cache{mount.GoModCache, mount.GoCache}
	}
	for i := range c.Layers { // a version 1 layer has no frame table
		c.Layers[i].FrameSize, c.Layers[i].Frames = 0, nil
	}
	return c, nil
}

// entryV1 is a version 1 index entry: the layer is stored, positions are
// unknown.
type entryV1 struct {
	Entry
	StoredLayer int `json:"layer"`
}

// decodeIndexV1 reads a version 1 index document.
func decodeIndexV1(b []byte) (*Index, error) {
	var d struct {
		FormatVersion int       `json:"formatVersion"`
		Entries       []entryV1 `json:"entries"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	x := &Index{FormatVersion: d.FormatVersion, Entries: make([]Entry, len(d.Entries))}
	for i, e := range d.Entries {
		x.Entries[i] = e.Entry
		x.Entries[i].Layer = e.StoredLayer
		x.Entries[i].Gen, x.Entries[i].Offset, x.Entries[i].Frame, x.Entries[i].GoTime = 0, 0, 0, 0
		if e.Type == TypeFile {
			x.Entries[i].Offset = -1 // unknown
		}
	}
	return x, nil
}
