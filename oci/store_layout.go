package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/melcache/melcache/internal/fsutil"
)

// Layout file names, from the OCI image-layout spec.
const (
	layoutFile      = "oci-layout"
	layoutIndexFile = "index.json"
	layoutBlobsDir  = "blobs"
	// layoutLockFile serialises index.json updates between processes. It
	// is an extra file in the layout dir; skopeo, oras and ggcr ignore
	// files they do not know.
	layoutLockFile = "index.json.lock"
	// layoutTmpPrefix marks blob and index files being written. A crash
	// leaves at most such temp files, which UnreferencedBlobs reports and
	// readers never look at.
	layoutTmpPrefix = ".tmp-"
	// RefNameAnnotation tags a manifest in index.json, as skopeo, oras and
	// containers/image read and write it.
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	// ociIndexMediaType is index.json's own media type.
	ociIndexMediaType = "application/vnd.oci.image.index.v1+json"
	// ociLayoutVersion is the only image-layout version there is.
	ociLayoutVersion = "1.0.0"
)

// lockRetryDelay is how often a writer waiting for another process's
// index.json lock retries: index updates hold it for a few milliseconds, so
// polling at this rate adds little latency and no measurable load.
const lockRetryDelay = 20 * time.Millisecond

// File modes: layouts are plain user data, readable by others like any
// cache directory (the owner may tighten the parent).
const (
	layoutDirMode  = 0o755
	layoutFileMode = 0o644
)

// LayoutStore is an OCI image layout directory used as a Store: the oci:PATH
// reference and the embedded store. Unlike ggcr's layout package it is
// crash-safe and safe for concurrent writers: blobs are written to a temp
// file, verified, fsynced and renamed into place; index.json is replaced
// atomically (temp + rename) under a flock, and always last, so it never
// names a blob that is not fully on disk.
type LayoutStore struct {
	dir  string
	desc string // for String()
	// emptyIfMissing makes reads of a layout that does not exist yet
	// return nothing instead of ErrNotFound (the embedded store).
	emptyIfMissing bool

	mu sync.Mutex // serialises index updates within the process
}

// NewLayoutStore returns the store for the OCI image layout at dir, which
// need not exist yet: it is created on the first write. A directory that
// exists, is not empty and has no oci-layout file is refused on write so a
// wrong path never gets blobs sprinkled into it.
func NewLayoutStore(dir string) *LayoutStore {
	return &LayoutStore{dir: dir, desc: LayoutPrefix + dir}
}

// NewEmbeddedStore returns the embedded store at dir (an OCI image layout).
// Reading it before anything was written gives empty results, not errors.
func NewEmbeddedStore(dir string) *LayoutStore {
	return &LayoutStore{dir: dir, desc: "embedded store " + dir, emptyIfMissing: true}
}

// String names the store: "oci:/path" or "embedded store /path".
func (s *LayoutStore) String() string { return s.desc }

// Dir returns the layout directory.
func (s *LayoutStore) Dir() string { return s.dir }

func (s *LayoutStore) blobPath(d v1.Hash) string {
	return filepath.Join(s.dir, layoutBlobsDir, d.Algorithm, d.Hex)
}

func checkHash(d v1.Hash) error {
	if d.Algorithm != "sha256" || len(d.Hex) != 2*sha256.Size {
		return fmt.Errorf("unsupported digest %q (want sha256:<64 hex>)", d.String())
	}
	if _, err := hex.DecodeString(d.Hex); err != nil {
		return fmt.Errorf("invalid digest %q: %v", d.String(), err)
	}
	return nil
}

// HasBlob reports whether blobs/sha256/<hex> exists.
func (s *LayoutStore) HasBlob(ctx context.Context, d v1.Hash) (bool, error) {
	if err := checkHash(d); err != nil {
		return false, fmt.Errorf("%s: %w", s, err)
	}
	_, err := os.Stat(s.blobPath(d))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("%s: %w", s, err)
}

// ensureLayout creates the layout directory, blobs/sha256 and oci-layout
// when missing, and refuses a non-empty directory that is not a layout.
func (s *LayoutStore) ensureLayout() error {
	if _, err := os.Stat(filepath.Join(s.dir, layoutFile)); err == nil {
		return os.MkdirAll(filepath.Join(s.dir, layoutBlobsDir, "sha256"), layoutDirMode)
	}
	ents, err := os.ReadDir(s.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		for _, e := range ents {
			switch {
			case e.Name() == layoutFile, e.Name() == layoutBlobsDir, e.Name() == layoutIndexFile, e.Name() == layoutLockFile,
				strings.HasPrefix(e.Name(), layoutTmpPrefix):
				// A layout being created concurrently (oci-layout itself
				// may appear between the Stat above and this listing), or
				// one written by a tool that omits oci-layout: adopt it.
			default:
				return fmt.Errorf("%s exists and is not an OCI image layout (no %s file, holds %s); refusing to write into it", s.dir, layoutFile, e.Name())
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(s.dir, layoutBlobsDir, "sha256"), layoutDirMode); err != nil {
		return err
	}
	b, _ := json.Marshal(map[string]string{"imageLayoutVersion": ociLayoutVersion})
	return writeFileAtomic(filepath.Join(s.dir, layoutFile), b)
}

// WriteBlob copies the blob from open into blobs/sha256/<hex>, hashing it on
// the way, and renames it into place only when digest and size match.
func (s *LayoutStore) WriteBlob(ctx context.Context, d v1.Hash, size int64, open func() (io.ReadCloser, error)) (bool, error) {
	if ok, err := s.HasBlob(ctx, d); err != nil || ok {
		return ok, err
	}
	if err := s.ensureLayout(); err != nil {
		return false, fmt.Errorf("writing to %s: %w", s, err)
	}
	rc, err := open()
	if err != nil {
		return false, fmt.Errorf("writing blob %s to %s: %w", d, s, err)
	}
	defer rc.Close()
	if err := s.writeBlobFrom(ctx, d, size, rc); err != nil {
		return false, fmt.Errorf("writing blob %s to %s: %w", d, s, err)
	}
	return false, nil
}

func (s *LayoutStore) writeBlobFrom(ctx context.Context, d v1.Hash, size int64, r io.Reader) error {
	// The blob is renamed into place only when digest and size match.
	// Durability: fsutil.SyncFileAndDir, as for index.json: the index
	// written next may name this blob, so it must be on disk first.
	return fsutil.WriteFileFunc(s.blobPath(d), func(w io.Writer) error {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), ctxReader{ctx, r})
		if err != nil {
			return err
		}
		got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
		if got != d || (size >= 0 && n != size) {
			return fmt.Errorf("content mismatch: got %s (%d bytes), want %s (%d bytes); not stored", got, n, d, size)
		}
		return nil
	}, layoutWrite(d.Hex[:12]))
}

// ReadBlob opens blobs/sha256/<hex>. The caller verifies the digest.
func (s *LayoutStore) ReadBlob(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	if err := checkHash(d); err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s in %s: %w", d, s, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	return f, nil
}

// layoutIndex is index.json. v1.Descriptor carries every descriptor field
// of the image spec (platform, annotations, artifactType, data, urls), so
// entries written by skopeo or oras survive our rewrite.
type layoutIndex struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

func (s *LayoutStore) readIndex() (*layoutIndex, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, layoutIndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(s.dir); serr != nil && !s.emptyIfMissing {
			return nil, fmt.Errorf("%s: no OCI image layout at %s: %w", s, s.dir, ErrNotFound)
		}
		return &layoutIndex{SchemaVersion: 2, MediaType: ociIndexMediaType}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	var idx layoutIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %s: %v", s, filepath.Join(s.dir, layoutIndexFile), err)
	}
	return &idx, nil
}

// updateIndex runs fn on index.json under the layout lock and replaces the
// file atomically when fn reports a change.
func (s *LayoutStore) updateIndex(ctx context.Context, fn func(*layoutIndex) (changed bool, err error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensureLayout(); err != nil {
		return err
	}
	lk := flock.New(filepath.Join(s.dir, layoutLockFile))
	if _, err := lk.TryLockContext(ctx, lockRetryDelay); err != nil {
		return fmt.Errorf("locking %s: %w", filepath.Join(s.dir, layoutLockFile), err)
	}
	defer lk.Unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	changed, err := fn(idx)
	if err != nil || !changed {
		return err
	}
	if idx.SchemaVersion == 0 {
		idx.SchemaVersion = 2
	}
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, layoutIndexFile), append(b, '\n'))
}

// PutManifest writes the manifest blob, then records it in index.json,
// tagged with the ref.name annotation when tag is not empty. A tag moves:
// any other entry carrying it is dropped, as skopeo does.
func (s *LayoutStore) PutManifest(ctx context.Context, tag, mediaType string, manifest []byte) (v1.Hash, error) {
	if tag != "" {
		if err := checkTag(tag); err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", s, err)
		}
	}
	d, size, err := v1.SHA256(bytes.NewReader(manifest))
	if err != nil {
		return v1.Hash{}, err
	}
	if err := s.checkReferences(manifest); err != nil {
		return v1.Hash{}, fmt.Errorf("writing manifest %s to %s: %w", d, s, err)
	}
	if _, err := s.WriteBlob(ctx, d, size, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(manifest)), nil
	}); err != nil {
		return v1.Hash{}, err
	}
	desc := v1.Descriptor{MediaType: types.MediaType(mediaType), Digest: d, Size: size}
	var mf struct {
		ArtifactType string `json:"artifactType"`
	}
	if json.Unmarshal(manifest, &mf) == nil && mf.ArtifactType != "" {
		desc.ArtifactType = mf.ArtifactType
	}
	if tag != "" {
		desc.Annotations = map[string]string{RefNameAnnotation: tag}
	}
	err = s.updateIndex(ctx, func(idx *layoutIndex) (bool, error) {
		out := idx.Manifests[:0:0]
		for _, m := range idx.Manifests {
			if tag != "" && m.Annotations[RefNameAnnotation] == tag {
				continue // the tag moves to the new manifest
			}
			if tag == "" && m.Digest == d {
				return false, nil // already recorded; keep its tags
			}
			out = append(out, m)
		}
		idx.Manifests = append(out, desc)
		return true, nil
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("writing manifest to %s: %w", s, err)
	}
	return d, nil
}

// checkReferences refuses a manifest naming a blob (config, layer, child
// manifest) the layout lacks, as a registry does (MANIFEST_BLOB_UNKNOWN):
// index.json then never names a manifest whose content is missing, whatever
// order a caller writes in.
func (s *LayoutStore) checkReferences(manifest []byte) error {
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return fmt.Errorf("manifest is not valid JSON: %v", err)
	}
	refs := append(m.Layers, m.Manifests...)
	if m.Config != nil {
		refs = append(refs, *m.Config)
	}
	for _, r := range refs {
		if err := checkHash(r.Digest); err != nil {
			return err
		}
		fi, err := os.Stat(s.blobPath(r.Digest))
		if err != nil {
			return fmt.Errorf("it names blob %s, which is not in the layout (write blobs first)", r.Digest)
		}
		if fi.Size() != r.Size {
			return fmt.Errorf("it names blob %s of %d bytes; the layout's has %d", r.Digest, r.Size, fi.Size())
		}
	}
	return nil
}

// GetManifest reads a manifest by tag (index.json's ref.name) or digest.
func (s *LayoutStore) GetManifest(ctx context.Context, tagOrDigest string) (string, []byte, v1.Hash, error) {
	idx, err := s.readIndex()
	if err != nil {
		return "", nil, v1.Hash{}, err
	}
	var desc *v1.Descriptor
	if strings.HasPrefix(tagOrDigest, "sha256:") {
		d, err := v1.NewHash(tagOrDigest)
		if err != nil {
			return "", nil, v1.Hash{}, fmt.Errorf("%s: %w", s, err)
		}
		for i := range idx.Manifests {
			if idx.Manifests[i].Digest == d {
				desc = &idx.Manifests[i]
				break
			}
		}
		if desc == nil {
			// A child of an image index (a multi-arch image skopeo
			// copied in) is reachable but not listed; a deleted
			// manifest whose blob awaits garbage collection is not.
			desc = s.findChild(idx.Manifests, d, 0)
		}
		if desc == nil {
			return "", nil, v1.Hash{}, fmt.Errorf("manifest %s in %s: %w", d, s, ErrNotFound)
		}
	} else {
		for i := range idx.Manifests {
			if idx.Manifests[i].Annotations[RefNameAnnotation] == tagOrDigest {
				desc = &idx.Manifests[i]
			}
		}
		if desc == nil {
			return "", nil, v1.Hash{}, fmt.Errorf("tag %q in %s: %w", tagOrDigest, s, ErrNotFound)
		}
	}
	b, err := os.ReadFile(s.blobPath(desc.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, v1.Hash{}, fmt.Errorf("manifest %s in %s: %w", desc.Digest, s, ErrNotFound)
	}
	if err != nil {
		return "", nil, v1.Hash{}, fmt.Errorf("%s: %w", s, err)
	}
	got, _, _ := v1.SHA256(bytes.NewReader(b))
	if got != desc.Digest {
		return "", nil, v1.Hash{}, fmt.Errorf("manifest %s in %s is corrupt: its content hashes to %s", desc.Digest, s, got)
	}
	mt := string(desc.MediaType)
	if mt == "" {
		var m struct {
			MediaType string `json:"mediaType"`
		}
		_ = json.Unmarshal(b, &m)
		mt = m.MediaType
	}
	return mt, b, desc.Digest, nil
}

// maxIndexDepth bounds the walk through nested image indexes: real layouts
// nest one level (an index of per-platform manifests); a cycle or a deeper
// chain is not worth following.
const maxIndexDepth = 4

// findChild looks for manifest d among the children of the image indexes in
// descs.
func (s *LayoutStore) findChild(descs []v1.Descriptor, d v1.Hash, depth int) *v1.Descriptor {
	if depth >= maxIndexDepth {
		return nil
	}
	for _, m := range descs {
		if !m.MediaType.IsIndex() {
			continue
		}
		b, err := os.ReadFile(s.blobPath(m.Digest))
		if err != nil {
			continue
		}
		var child struct {
			Manifests []v1.Descriptor `json:"manifests"`
		}
		if json.Unmarshal(b, &child) != nil {
			continue
		}
		for i := range child.Manifests {
			if child.Manifests[i].Digest == d {
				return &child.Manifests[i]
			}
		}
		if c := s.findChild(child.Manifests, d, depth+1); c != nil {
			return c
		}
	}
	return nil
}

// Tags lists the ref.name annotations in index.json, sorted.
func (s *LayoutStore) Tags(ctx context.Context) ([]string, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, m := range idx.Manifests {
		if t := m.Annotations[RefNameAnnotation]; t != "" {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return slices.Compact(tags), nil
}

// DeleteManifest drops every index.json entry for the digest. The blobs stay
// until a garbage collection (see UnreferencedBlobs): another manifest may
// share them.
func (s *LayoutStore) DeleteManifest(ctx context.Context, d v1.Hash) error {
	found := false
	err := s.updateIndex(ctx, func(idx *layoutIndex) (bool, error) {
		out := idx.Manifests[:0:0]
		for _, m := range idx.Manifests {
			if m.Digest == d {
				found = true
				continue
			}
			out = append(out, m)
		}
		idx.Manifests = out
		return found, nil
	})
	if err != nil {
		return fmt.Errorf("deleting %s from %s: %w", d, s, err)
	}
	if !found {
		return fmt.Errorf("manifest %s in %s: %w", d, s, ErrNotFound)
	}
	return nil
}

// UnreferencedBlobs lists the blobs no manifest reachable from index.json
// refers to (config, layers, subject, child manifests), and leftover temp
// files of interrupted writes, as paths relative to the layout dir. It is
// the listing half of a garbage collection; it removes nothing. Run it
// while no push writes to the layout: a push writes blobs before the index.
func (s *LayoutStore) UnreferencedBlobs(ctx context.Context) ([]string, error) {
	return s.unreferenced(ctx, nil)
}

// unreferenced is UnreferencedBlobs counting the index.json entries for the
// manifests in skip as gone (a gc dry run).
func (s *LayoutStore) unreferenced(ctx context.Context, skip map[v1.Hash]bool) ([]string, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	live := map[v1.Hash]bool{}
	var walk func(d v1.Hash) error
	walk = func(d v1.Hash) error {
		if live[d] {
			return nil
		}
		live[d] = true
		b, err := os.ReadFile(s.blobPath(d))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var m struct {
			Config    *v1.Descriptor  `json:"config"`
			Layers    []v1.Descriptor `json:"layers"`
			Manifests []v1.Descriptor `json:"manifests"`
			Blobs     []v1.Descriptor `json:"blobs"`
			Subject   *v1.Descriptor  `json:"subject"`
		}
		if json.Unmarshal(b, &m) != nil {
			return nil // a blob, not a manifest
		}
		if m.Config != nil {
			live[m.Config.Digest] = true
		}
		for _, l := range append(m.Layers, m.Blobs...) {
			live[l.Digest] = true
		}
		if m.Subject != nil {
			if err := walk(m.Subject.Digest); err != nil {
				return err
			}
		}
		for _, c := range m.Manifests {
			if err := walk(c.Digest); err != nil {
				return err
			}
		}
		return nil
	}
	for _, m := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if skip[m.Digest] {
			continue
		}
		if err := walk(m.Digest); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, layoutBlobsDir, "sha256"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	var out []string
	for _, e := range ents {
		if !live[v1.Hash{Algorithm: "sha256", Hex: e.Name()}] {
			out = append(out, filepath.Join(layoutBlobsDir, "sha256", e.Name()))
		}
	}
	return out, nil
}

// writeFileAtomic replaces path, a file of the layout (oci-layout,
// index.json), with b.
func writeFileAtomic(path string, b []byte) error {
	return fsutil.WriteFile(path, b, layoutWrite(filepath.Base(path)))
}

// layoutWrite is how the layout writes its files: temp files start with
// layoutTmpPrefix, so a crash leaves only debris the layout recognises.
// Durability: fsutil.SyncFileAndDir. index.json must never name a blob
// that is not on disk, and a push reports success only once the tag is
// durable, so every blob and index rename is flushed before the next step.
func layoutWrite(tempName string) fsutil.WriteOptions {
	return fsutil.WriteOptions{
		Perm:       layoutFileMode,
		Sync:       fsutil.SyncFileAndDir,
		TempPrefix: layoutTmpPrefix + tempName + "-",
	}
}

// ctxReader stops a copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
