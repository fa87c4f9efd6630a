package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"runtime"
	"sort"
	"strings"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/mount"
)

// Media types and annotations of the snapshot artifact (docs/format.md).
const (
	// ArtifactType marks a manifest as a melcache snapshot.
	ArtifactType = "application/vnd.melcache.snapshot.v2"
	// ConfigMediaType is the deterministic JSON config blob.
	ConfigMediaType = "application/vnd.melcache.snapshot.config.v2+json"
	// IndexMediaType is one zstd-compressed JSON index document; the
	// manifest's first layers are the index chain (index_chain.go).
	IndexMediaType = "application/vnd.melcache.snapshot.index.v2+json+zstd"
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

// FormatVersion is the snapshot format this code writes. Readers also
// accept formatVersion1 (format_v1.go).
const FormatVersion = 2

// Limits on what a reader accepts from a store. They bound memory and disk
// use against a hostile or broken snapshot; real caches are far below them.
const (
	// maxManifestBytes: a manifest lists ~2 layers per generation.
	maxManifestBytes = 4 << 20
	// maxConfigBytes: the config holds a few lines per layer.
	maxConfigBytes = 4 << 20
	// maxIndexBytes: ~150 bytes per entry; 1 GiB allows ~7M entries. It
	// bounds each index document and the whole chain.
	maxIndexBytes = 1 << 30
	// maxFrameSize bounds a layer's declared frameSize: the cacheprog
	// reader holds a frame in memory, and writers use pzstdChunk (4 MiB).
	maxFrameSize = 64 << 20
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
	// Gen is the generation of the data layer holding the file; with Cache
	// it names exactly one config layer.
	Gen int `json:"gen,omitempty"`
	// Offset is the byte offset of the file's content (after its tar
	// headers) in its layer's uncompressed tar stream; -1 when unknown (a
	// version 1 snapshot). Frame is Offset / the layer's frameSize. Both
	// are written for every file, frame 0 included (wireEntry).
	Offset int64 `json:"offset,omitempty"`
	Frame  int64 `json:"frame,omitempty"`
	// GoTime is the time field of a GOCACHE -a entry as packed (decimal
	// ns in the file); 0 for every other entry.
	GoTime int64 `json:"goTime,omitempty"`
	// Layer is the index into Config.Layers of the layer holding the file:
	// not stored, the reader materialises it from (Cache, Gen).
	Layer int `json:"-"`

	// st is what the scan saw of the local file (statcache.go); not
	// indexed.
	st fileStat
}

// sameAs compares the fields an index document stores, and Layer. Fields
// a scan keeps for itself (mtime and the like) do not count.
func (e *Entry) sameAs(o *Entry) bool {
	return e.sameStored(o) && e.Layer == o.Layer
}

// sameStored compares the fields an index document stores: two entries
// that differ in any of them make an index delta carry the entry.
func (e *Entry) sameStored(o *Entry) bool {
	return e.Cache == o.Cache && e.Path == o.Path && e.Type == o.Type && e.Mode == o.Mode &&
		e.Size == o.Size && e.SHA256 == o.SHA256 && e.Gen == o.Gen && e.Offset == o.Offset &&
		e.Frame == o.Frame && e.GoTime == o.GoTime
}

// TarName is the entry's member name in a data layer: CACHE/PATH.
func (e Entry) TarName() string { return string(e.Cache) + "/" + e.Path }

func (e Entry) key() string { return string(e.Cache) + "\x00" + e.Path }

// Index is a snapshot's materialised index: the chain of index documents
// applied in order (index_chain.go), sorted by (cache, path).
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
	// FrameSize is the uncompressed tar bytes per zstd frame (every frame
	// but the last holds exactly this many); Frames the compressed length
	// of each frame, so frame i starts at sum(Frames[:i]) in the blob.
	// Both are zero in a version 1 snapshot.
	FrameSize int64   `json:"frameSize"`
	Frames    []int64 `json:"frames"`
}

// IndexRef names one index document of the chain in the config.
type IndexRef struct {
	Digest v1.Hash `json:"digest"`
	// Size is the uncompressed size of the document.
	Size int64 `json:"size"`
	// Entries is the number of entries plus deletions in the document.
	Entries int `json:"entries"`
}

// Config is the snapshot's config blob (version 2; format_v1.go reads
// version 1 into it).
type Config struct {
	FormatVersion int    `json:"formatVersion"`
	Arch          string `json:"arch"`
	GoVersion     string `json:"goVersion"`
	// Caches are the caches the snapshot holds, in registry order
	// (mount.Profiles); a partial push (--only) lists fewer.
	Caches []mount.Cache `json:"caches"`
	Files  int           `json:"files"`
	Size   int64         `json:"size"`
	// Indexes is the index chain, oldest first: manifest layers
	// [0, len(Indexes)).
	Indexes []IndexRef  `json:"indexes"`
	Layers  []LayerInfo `json:"layers"`
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

// Snapshot is a parsed, validated snapshot: manifest, config and the
// materialised index.
type Snapshot struct {
	Digest   v1.Hash
	Manifest *v1.Manifest
	Config   *Config
	Index    *Index
	// ManifestBytes, ConfigBytes and IndexBytes are the blobs' sizes as
	// stored (IndexBytes: every document of the chain).
	ManifestBytes, ConfigBytes, IndexBytes int64
}

// IndexLayers are the manifest's descriptors of the index chain.
func (s *Snapshot) IndexLayers() []v1.Descriptor {
	return s.Manifest.Layers[:len(s.Config.Indexes)]
}

// DataLayer is the manifest's descriptor of config layer i.
func (s *Snapshot) DataLayer(i int) v1.Descriptor {
	return s.Manifest.Layers[len(s.Config.Indexes)+i]
}

// goTrimFile is GOCACHE's trim.txt, which a restore rewrites (Restore,
// step 7).
const goTrimFile = "trim.txt"

// goCacheDataID returns the ID in the name of a GOCACHE output file
// ("NN/<64 lowercase hex>-d"), whose name is the SHA-256 of its content.
// A function, not a regular expression: it runs for every entry of a
// push, and a compiled {64} costs every melcache start (cacheprog's
// included, which the go command waits for) a millisecond.
func goCacheDataID(p string) (string, bool) {
	if len(p) != 2+1+2*mount.GoCacheHashSize+2 || p[2] != '/' || !strings.HasSuffix(p, "-d") {
		return "", false
	}
	id := p[3 : 3+2*mount.GoCacheHashSize]
	for _, c := range []byte(p[:2]) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return id, mount.IsGoCacheID(id)
}

// checkIndex validates every entry (docs/format.md, "Restore" step 2).
func checkIndex(x *Index, c *Config) error {
	if x.FormatVersion != c.FormatVersion {
		return fmt.Errorf("snapshot index format version %d; want %d", x.FormatVersion, c.FormatVersion)
	}
	seen := make(map[string]string, len(x.Entries)) // key → type
	files := 0
	var size int64
	perLayer := make([]int64, len(c.Layers))
	for _, e := range x.Entries {
		if _, ok := mount.LookupCache(string(e.Cache)); !ok {
			return fmt.Errorf("snapshot index: entry %q in unknown cache %q", e.Path, e.Cache)
		}
		if err := checkPath(e.Path); err != nil {
			return fmt.Errorf("snapshot index: %s/%q: %w", e.Cache, e.Path, err)
		}
		if _, dup := seen[e.key()]; dup {
			return fmt.Errorf("snapshot index: duplicate entry %s/%s", e.Cache, e.Path)
		}
		if err := checkFetchEntry(&e); err != nil {
			return err
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
			if e.Gen != 0 || e.Offset > 0 || e.Frame != 0 || e.GoTime != 0 {
				return fmt.Errorf("snapshot index: directory %s/%s has a layer position or time", e.Cache, e.Path)
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
				if id, ok := goCacheDataID(e.Path); ok && id != e.SHA256 {
					return fmt.Errorf("snapshot index: %s/%s: content sha256 %s is not its name", e.Cache, e.Path, e.SHA256)
				}
			}
			perLayer[e.Layer] += e.Size
			if perLayer[e.Layer] > c.Layers[e.Layer].Size {
				return fmt.Errorf("snapshot index: layer %d holds more bytes than the config declares (%d)", e.Layer, c.Layers[e.Layer].Size)
			}
			if c.FormatVersion >= 2 {
				if err := checkPosition(&e, c.Layers[e.Layer]); err != nil {
					return err
				}
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

// checkPosition checks a version 2 file entry's place in its layer: its
// content lies inside the tar stream, on a tar block boundary after at
// least one header, in the frame the entry names; only a GOCACHE -a entry
// has a goTime.
func checkPosition(e *Entry, l LayerInfo) error {
	switch {
	case e.Offset < tarBlock || e.Offset%tarBlock != 0 || e.Offset > l.Size-e.Size:
		return fmt.Errorf("snapshot index: %s/%s: content at offset %d (%d bytes) is not inside its %d-byte layer", e.Cache, e.Path, e.Offset, e.Size, l.Size)
	case e.Frame != e.Offset/l.FrameSize:
		return fmt.Errorf("snapshot index: %s/%s: frame %d, but offset %d is in frame %d", e.Cache, e.Path, e.Frame, e.Offset, e.Offset/l.FrameSize)
	case e.GoTime != 0 && (e.Cache != mount.GoCache || !strings.HasSuffix(e.Path, "-a")):
		return fmt.Errorf("snapshot index: %s/%s has a goTime but is not a GOCACHE -a entry", e.Cache, e.Path)
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
