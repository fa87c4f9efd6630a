package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/melcache/melcache/mount"
)

// Media types and annotations of the snapshot artifact (docs/format.md).
const (
	// ArtifactType marks a manifest as a melcache snapshot.
	ArtifactType = "application/vnd.melcache.snapshot.v1"
	// ConfigMediaType is the deterministic JSON config blob.
	ConfigMediaType = "application/vnd.melcache.snapshot.config.v1+json"
	// IndexMediaType is the zstd-compressed JSON index, always layers[0].
	IndexMediaType = "application/vnd.melcache.snapshot.index.v1+json+zstd"
	// LayerMediaType is a data layer: a standard OCI tar+zstd layer, so
	// generic tools (skopeo, crane, oras, tar) can read it.
	LayerMediaType = "application/vnd.oci.image.layer.v1.tar+zstd"

	// AnnotationCreated holds the push time (RFC 3339); restore-keys pick the
	// newest by it.
	AnnotationCreated = "org.opencontainers.image.created"
	// AnnotationKey holds the tag the snapshot was pushed under.
	AnnotationKey = "dev.melcache.snapshot.key"
	// AnnotationBase holds the digest of the snapshot this one is a delta of.
	AnnotationBase = "dev.melcache.snapshot.base"
	// AnnotationFiles holds the number of files, so ls needs no blob reads.
	AnnotationFiles = "dev.melcache.snapshot.files"
)

// FormatVersion is the snapshot format this code writes and the only one it
// reads.
const FormatVersion = 1

// Limits on what a reader accepts from a store. They bound memory and disk
// use against a hostile or broken snapshot; real caches are far below them.
const (
	// maxManifestBytes: a manifest lists ~2 layers per generation.
	maxManifestBytes = 4 << 20
	// maxConfigBytes: the config holds a few lines per layer.
	maxConfigBytes = 4 << 20
	// maxIndexBytes: ~150 bytes per entry; 1 GiB allows ~7M entries.
	maxIndexBytes = 1 << 30
	// maxPathBytes / maxNameBytes: PATH_MAX and NAME_MAX on Linux.
	maxPathBytes = 4096
	maxNameBytes = 255
	// maxGenerations: past this many generations a push compacts.
	maxGenerations = 8
	// maxDeadFraction: past this share of dead bytes a push compacts.
	maxDeadFraction = 0.30
)

// Entry types in the index.
const (
	TypeFile = "file"
	TypeDir  = "dir"
)

// Entry is one directory or regular file of a cache, as the index lists it.
type Entry struct {
	Cache  mount.Cache `json:"cache"`
	Path   string      `json:"path"`
	Type   string      `json:"type"`
	Mode   uint32      `json:"mode"`
	Size   int64       `json:"size,omitempty"`
	SHA256 string      `json:"sha256,omitempty"`
	// GoTime is, for a GOCACHE action ("-a") entry, the time field of the
	// content as packed (Unix ns): a local "-a" that differs from the entry
	// only there is the same entry (sameFile, docs/format.md "Deltas").
	GoTime int64 `json:"goTime,omitempty"`
	// Layer is the index into Config.Layers of the layer holding the file.
	Layer int `json:"layer"`

	// st is what the scan saw of the local file (statcache.go); not
	// indexed.
	st fileStat
}

// sameAs compares the indexed fields of two entries.
func (e Entry) sameAs(o Entry) bool {
	e.st, o.st = fileStat{}, fileStat{}
	return e == o
}

// TarName is the entry's member name in a data layer: CACHE/PATH.
func (e Entry) TarName() string { return string(e.Cache) + "/" + e.Path }

func (e Entry) key() string { return string(e.Cache) + "\x00" + e.Path }

// Index is the snapshot's index document.
type Index struct {
	FormatVersion int     `json:"formatVersion"`
	Entries       []Entry `json:"entries"`
}

// LayerInfo describes one data layer in the config.
type LayerInfo struct {
	Digest     v1.Hash     `json:"digest"`
	Cache      mount.Cache `json:"cache"`
	Generation int         `json:"generation"`
	Files      int         `json:"files"`
	// Size is the exact length of the uncompressed tar stream.
	Size int64 `json:"size"`
}

// BlobRef names the index blob in the config.
type BlobRef struct {
	Digest v1.Hash `json:"digest"`
	// Size is the uncompressed size of the index document.
	Size int64 `json:"size"`
}

// Config is the snapshot's config blob.
type Config struct {
	FormatVersion int         `json:"formatVersion"`
	Arch          string      `json:"arch"`
	GoVersion     string      `json:"goVersion"`
	Files         int         `json:"files"`
	Size          int64       `json:"size"`
	Index         BlobRef     `json:"index"`
	Layers        []LayerInfo `json:"layers"`
	// Caches lists the caches a partial snapshot (push --only) holds;
	// absent (nil) for a full snapshot, which holds every cache.
	Caches []mount.Cache `json:"caches,omitempty"`
}

// MaxGeneration returns the highest layer generation, 0 with no layers.
func (c *Config) MaxGeneration() int {
	g := 0
	for _, l := range c.Layers {
		g = max(g, l.Generation)
	}
	return g
}

// Arch returns melange's name for a Go GOARCH (x86_64, aarch64, ...).
func Arch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "x86"
	case "arm":
		return "armv7"
	}
	return goarch
}

// HostArch is Arch(runtime.GOARCH).
func HostArch() string { return Arch(runtime.GOARCH) }

// Snapshot is a parsed, validated snapshot: manifest, config and index.
type Snapshot struct {
	Digest   v1.Hash
	Manifest *v1.Manifest
	Config   *Config
	Index    *Index
	// ManifestBytes, ConfigBytes and IndexBytes are the blobs' sizes as stored.
	ManifestBytes, ConfigBytes, IndexBytes int64
}

// parseManifest checks that b is a melcache snapshot manifest.
func parseManifest(mediaType string, b []byte) (*v1.Manifest, error) {
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if mediaType != "" && mediaType != string(types.OCIManifestSchema1) {
		return nil, fmt.Errorf("not a melcache snapshot: manifest media type %s", mediaType)
	}
	if m.ArtifactType != ArtifactType {
		return nil, fmt.Errorf("not a melcache snapshot: artifactType %q, want %s", m.ArtifactType, ArtifactType)
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("not a melcache snapshot: config media type %s", m.Config.MediaType)
	}
	if len(m.Layers) == 0 || m.Layers[0].MediaType != IndexMediaType {
		return nil, fmt.Errorf("snapshot manifest: first layer is not the index (%s)", IndexMediaType)
	}
	for i, l := range m.Layers[1:] {
		if l.MediaType != LayerMediaType {
			return nil, fmt.Errorf("snapshot manifest: layer %d has media type %s, want %s", i+1, l.MediaType, LayerMediaType)
		}
	}
	if m.Config.Size > maxConfigBytes {
		return nil, fmt.Errorf("snapshot config is %d bytes, over the %d limit", m.Config.Size, maxConfigBytes)
	}
	return &m, nil
}

// checkConfig validates the config against the manifest.
func checkConfig(c *Config, m *v1.Manifest) error {
	if c.FormatVersion != FormatVersion {
		return fmt.Errorf("snapshot format version %d; this melcache reads version %d", c.FormatVersion, FormatVersion)
	}
	if len(c.Layers) != len(m.Layers)-1 {
		return fmt.Errorf("snapshot config lists %d data layers, manifest %d", len(c.Layers), len(m.Layers)-1)
	}
	if c.Index.Digest != m.Layers[0].Digest {
		return fmt.Errorf("snapshot config names index %s, manifest %s", c.Index.Digest, m.Layers[0].Digest)
	}
	if c.Index.Size < 0 || c.Index.Size > maxIndexBytes {
		return fmt.Errorf("snapshot index declares %d bytes, over the %d limit", c.Index.Size, maxIndexBytes)
	}
	for i, l := range c.Layers {
		if l.Digest != m.Layers[i+1].Digest {
			return fmt.Errorf("snapshot config layer %d is %s, manifest says %s", i, l.Digest, m.Layers[i+1].Digest)
		}
		if l.Cache != mount.GoModCache && l.Cache != mount.GoCache {
			return fmt.Errorf("snapshot layer %s restores into unknown cache %q", l.Digest, l.Cache)
		}
		if l.Size < 0 || l.Files < 0 {
			return fmt.Errorf("snapshot layer %s: negative size or file count", l.Digest)
		}
	}
	return nil
}

// goTrimFile is GOCACHE's trim.txt, which a restore rewrites (Restore,
// step 7).
const goTrimFile = "trim.txt"

// goCacheDataName matches a GOCACHE output file, whose name is the SHA-256
// of its content.
var goCacheDataName = regexp.MustCompile(`^[0-9a-f]{2}/([0-9a-f]{64})-d$`)

// checkIndex validates every entry (docs/format.md, "Restore" step 2).
func checkIndex(x *Index, c *Config) error {
	if x.FormatVersion != FormatVersion {
		return fmt.Errorf("snapshot index format version %d; want %d", x.FormatVersion, FormatVersion)
	}
	seen := make(map[string]string, len(x.Entries)) // key → type
	files := 0
	var size int64
	perLayer := make([]int64, len(c.Layers))
	for _, e := range x.Entries {
		if e.Cache != mount.GoModCache && e.Cache != mount.GoCache {
			return fmt.Errorf("snapshot index: entry %q in unknown cache %q", e.Path, e.Cache)
		}
		if err := checkPath(e.Path); err != nil {
			return fmt.Errorf("snapshot index: %s/%q: %w", e.Cache, e.Path, err)
		}
		if _, dup := seen[e.key()]; dup {
			return fmt.Errorf("snapshot index: duplicate entry %s/%s", e.Cache, e.Path)
		}
		seen[e.key()] = e.Type
		if e.Mode&^0o777 != 0 {
			return fmt.Errorf("snapshot index: %s/%s has mode %o: only permission bits are allowed (no setuid, setgid, sticky)", e.Cache, e.Path, e.Mode)
		}
		switch e.Type {
		case TypeDir:
			if e.Cache == mount.GoCache && e.Path == goTrimFile {
				return fmt.Errorf("snapshot index: %s/%s is a directory: a restore writes Go's trim file there", e.Cache, e.Path)
			}
		case TypeFile:
			if e.Layer < 0 || e.Layer >= len(c.Layers) {
				return fmt.Errorf("snapshot index: %s/%s names layer %d of %d", e.Cache, e.Path, e.Layer, len(c.Layers))
			}
			if c.Layers[e.Layer].Cache != e.Cache {
				return fmt.Errorf("snapshot index: %s/%s is in a %s layer", e.Cache, e.Path, c.Layers[e.Layer].Cache)
			}
			if e.Size < 0 || len(e.SHA256) != 64 || strings.Trim(e.SHA256, "0123456789abcdef") != "" {
				return fmt.Errorf("snapshot index: %s/%s: bad size or sha256", e.Cache, e.Path)
			}
			if e.Cache == mount.GoCache {
				if m := goCacheDataName.FindStringSubmatch(e.Path); m != nil && m[1] != e.SHA256 {
					return fmt.Errorf("snapshot index: %s/%s: content sha256 %s is not its name", e.Cache, e.Path, e.SHA256)
				}
			}
			perLayer[e.Layer] += e.Size
			if perLayer[e.Layer] > c.Layers[e.Layer].Size {
				return fmt.Errorf("snapshot index: layer %d holds more bytes than the config declares (%d)", e.Layer, c.Layers[e.Layer].Size)
			}
			files++
			size += e.Size
		default:
			return fmt.Errorf("snapshot index: %s/%s has type %q (only file and dir)", e.Cache, e.Path, e.Type)
		}
	}
	if err := checkPartial(x, c); err != nil {
		return err
	}
	if files != c.Files || size != c.Size {
		return fmt.Errorf("snapshot index holds %d files (%d bytes), config declares %d (%d)", files, size, c.Files, c.Size)
	}
	// Every parent of an entry must be a dir entry or the cache root, so a
	// restore never has to guess a directory's mode.
	for _, e := range x.Entries {
		if d := path.Dir(e.Path); d != "." {
			// ...and a directory: a file with children would be
			// written through (the restore fails late, but never
			// starts on a tree it cannot build).
			if seen[string(e.Cache)+"\x00"+d] != TypeDir {
				return fmt.Errorf("snapshot index: %s/%s has no directory entry for its parent", e.Cache, e.Path)
			}
		}
	}
	return nil
}

// checkPath refuses anything that could escape the cache root.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case !utf8.ValidString(p) || strings.ContainsRune(p, utf8.RuneError):
		// JSON decoding turns invalid bytes into U+FFFD, which no name
		// Go writes contains: treat it as the invalid name it stood for.
		return fmt.Errorf("not UTF-8")
	case len(p) > maxPathBytes:
		return fmt.Errorf("path over %d bytes", maxPathBytes)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("absolute path")
	case strings.ContainsAny(p, "\x00\\"):
		return fmt.Errorf("NUL or backslash in path")
	}
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == "." || c == "..":
			return fmt.Errorf("path component %q", c)
		case len(c) > maxNameBytes:
			return fmt.Errorf("path component over %d bytes", maxNameBytes)
		}
	}
	return nil
}

// encodeJSON marshals v deterministically (struct field order, sorted map
// keys, no trailing newline differences).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// sortEntries orders entries by (cache, path), the index and tar order.
func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].Cache != es[j].Cache {
			return es[i].Cache < es[j].Cache
		}
		return es[i].Path < es[j].Path
	})
}
