package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/melcache/melcache/mount"
	"golang.org/x/sync/errgroup"
)

// tmpDirName holds push temp files under the state directory, so a killed
// push leaves nothing in the caches and the next push cleans up.
const tmpDirName = "tmp"

// Options configure Push and Pull.
type Options struct {
	// Jobs bounds parallel hashing, packing and transfers; 0 means
	// GOMAXPROCS.
	Jobs int
	// Compact repacks every file into one layer per cache (push).
	Compact bool
	// Replace makes a pull give exactly the snapshot instead of merging.
	Replace bool
	// RestoreKeys are tag prefixes a pull falls back to, in order, when the
	// reference's tag does not exist (newest by created annotation wins).
	RestoreKeys []string
	// Lock is a lock the caller already holds on the layout, reused instead
	// of taking a new one.
	Lock *mount.Lock
	// LockOptions configure waiting for the lock.
	LockOptions mount.LockOptions
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// GoVersion is recorded in the config ("" when unknown).
	GoVersion string
	// Progress, when set, receives transfer progress.
	Progress TransferProgress
	// Only limits a push or pull to these caches (nil: all). A partial
	// push records them in the config; a partial pull leaves the other
	// caches untouched.
	Only []mount.Cache
}

// TransferProgress receives transfer progress: oci reports through it and
// draws nothing (the CLI renders it as bars, cmd/melcache/progress.go).
// Implementations must be safe for concurrent use.
type TransferProgress interface {
	// Start announces a transfer of size bytes named name and returns a
	// function to call with each chunk's byte count, and one to call at the
	// end.
	Start(name string, size int64) (add func(int64), done func())
}

func (o *Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o.Log
}

func (o *Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o *Options) jobs() int {
	if o.Jobs <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return o.Jobs
}

// Result summarises a push or a pull (the --json output).
type Result struct {
	Direction string `json:"direction"`
	Store     string `json:"store"`
	Tag       string `json:"tag,omitempty"`
	Digest    string `json:"digest"`
	// Base is the snapshot a push was a delta of.
	Base string `json:"base,omitempty"`
	// Resolved says how a pull found its snapshot: "tag", "digest" or
	// "restore-key PREFIX".
	Resolved string `json:"resolved,omitempty"`
	// Layers is the number of data layers uploaded or downloaded.
	Layers int `json:"layers"`
	// DataBytes are compressed data-layer bytes moved; MetaBytes the
	// manifest, config and index.
	DataBytes int64 `json:"dataBytes"`
	MetaBytes int64 `json:"metadataBytes"`
	// BlobsSkipped counts blobs not moved: already in the store (push) or
	// whose files were all present locally (pull).
	BlobsSkipped int `json:"blobsSkipped"`
	// Files and Bytes count the snapshot's files and their size.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// FilesWritten counts files a pull wrote (the rest were reused).
	FilesWritten int `json:"filesWritten,omitempty"`
	// Unchanged: the push found nothing new and wrote nothing.
	Unchanged bool `json:"unchanged,omitempty"`
	// Compacted says why a push repacked everything.
	Compacted string `json:"compacted,omitempty"`
	ScanStats
	Duration time.Duration `json:"durationNs"`
	Seconds  float64       `json:"seconds"`
}

// Push snapshots the caches of l to s under tag (docs/format.md), as a delta
// against the snapshot last exchanged with s under that tag when the store
// still has it. It holds the layout's lock shared: builds (shared holders)
// may run meanwhile, and a GOCACHE -d file still being written is skipped;
// pull, prune and clean (exclusive) wait.
func Push(ctx context.Context, l mount.Layout, s Store, tag string, o Options) (*Result, error) {
	start := time.Now()
	log := o.log()
	// Finish an interrupted restore first: the caches could be half swapped.
	if did, err := RecoverInterrupted(ctx, l, RecoverOptions{Lock: o.Lock, LockOptions: o.LockOptions}); err != nil {
		return nil, err
	} else if did != "" {
		log.Warn(did)
	}
	release, err := l.Acquire(ctx, o.Lock, mount.Shared, o.LockOptions)
	if err != nil {
		return nil, err
	}
	defer release()
	res := &Result{Direction: "push", Store: s.String(), Tag: tag}

	// Ask the store a cheap question before scanning and packing, which
	// take minutes on a large cache: an unreachable registry, refused
	// credentials or a path that is not a layout should fail at once and
	// name the store, not after all the work.
	if _, err := s.HasBlob(ctx, probeDigest); err != nil && !isNotFound(err) {
		return nil, err // the stores' errors name the store
	}

	// A delta needs every file's digest up front; a full push hashes
	// while packing, so each byte is hashed once.
	base := loadBase(ctx, l, s, tag, log)
	caches, err := o.pushCaches(l)
	if err != nil {
		return nil, err
	}
	entries, st, err := scanCaches(ctx, l, caches, o.jobs(), base != nil)
	if err != nil {
		return nil, err
	}
	res.ScanStats = st
	log.Debug("scanned the caches", "entries", len(entries), "hashed all", base != nil, "elapsed", time.Since(start))
	if st.Writing > 0 {
		log.Warn("skipped GOCACHE entries still being written", "count", st.Writing)
	}
	if st.Other > 0 {
		log.Warn("skipped entries that are neither files nor directories", "count", st.Other)
	}
	if st.BadName > 0 {
		log.Warn("skipped entries whose names a snapshot cannot hold (not UTF-8 or too long)", "count", st.BadName)
	}
	p := makePlan(entries, base, o.Compact)
	if base != nil && !p.compact && !baseLayersPresent(ctx, s, p.kept) {
		log.Warn("store lacks layers of the base snapshot; pushing a full snapshot", "base", base.Digest)
		base = nil
		p = makePlan(entries, nil, o.Compact)
	}
	if base != nil {
		res.Base = base.Digest.String()
	}
	res.Compacted = p.reason
	for _, e := range p.entries {
		if e.Type == TypeFile {
			res.Files++
			res.Bytes += e.Size
		}
	}
	if p.unchanged && base != nil {
		if _, _, d, err := s.GetManifest(ctx, tagOrLatest(tag)); err == nil && d == base.Digest {
			res.Unchanged, res.Digest = true, base.Digest.String()
			res.BlobsSkipped = len(base.Manifest.Layers) + 1
			log.Debug("unchanged since the last push; nothing uploaded", "digest", res.Digest)
			return finish(l, s, tag, res, start, "push")
		}
	}

	tmp, err := pushTempDir(l)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	// Pack the new layers, one per cache, each written once to a temp file
	// while its compressed stream is hashed, and upload each as soon as it
	// is packed (in parallel with packing the next). The caches are packed
	// one after the other: each layer's compression already uses every
	// core, and one at a time halves the memory in flight. Metadata goes
	// after the layers and the manifest last, so a store never holds a
	// manifest whose blobs are missing.
	var packed []*packedLayer
	layers := append([]LayerInfo(nil), p.kept...)
	var skipped atomic.Int64
	var dataBytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range l.Caches() {
		files := p.fresh[c]
		if len(files) == 0 {
			continue
		}
		pl, err := packLayer(gctx, l, c, files, tmp, o.jobs())
		if err != nil {
			// A failed upload cancels gctx, and packing then fails with
			// "context canceled": report the upload's error, the cause.
			if werr := g.Wait(); werr != nil {
				return nil, werr
			}
			return nil, err
		}
		pl.info.Generation = p.generation
		n := len(layers)
		for _, e := range files {
			e.Layer = n
		}
		layers = append(layers, pl.info)
		packed = append(packed, pl)
		log.Debug("packed layer", "cache", c, "files", len(files), "elapsed", time.Since(start))
		g.Go(func() error {
			add, done := startProgress(o.Progress, "push "+string(pl.info.Cache)+" "+short(pl.info.Digest), pl.compressed)
			defer done()
			sk, err := s.WriteBlob(gctx, pl.info.Digest, pl.compressed, func() (io.ReadCloser, error) {
				f, err := os.Open(pl.file)
				if err != nil {
					return nil, err
				}
				return &progressReader{ReadCloser: f, add: add}, nil
			})
			if err != nil {
				return fmt.Errorf("%s: upload layer %s: %w", s, pl.info.Digest, err)
			}
			if sk {
				skipped.Add(1)
			} else {
				dataBytes.Add(pl.compressed)
			}
			crashPoint("push-layer")
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Drop the -d files packing found still being written.
	if dropped := dropUnhashed(p); dropped > 0 {
		res.Writing += dropped
		res.Files, res.Bytes = 0, 0
		for _, e := range p.entries {
			if e.Type == TypeFile {
				res.Files++
				res.Bytes += e.Size
			}
		}
	}
	log.Debug("uploaded data layers", "elapsed", time.Since(start))
	res.Layers = len(packed) - int(skipped.Load())
	res.DataBytes = dataBytes.Load()
	res.BlobsSkipped = int(skipped.Load()) + len(p.kept)

	x := &Index{FormatVersion: FormatVersion, Entries: p.entries}
	ib, err := encodeJSON(x)
	if err != nil {
		return nil, err
	}
	izb, err := compressBytes(ib)
	if err != nil {
		return nil, err
	}
	indexDesc := blobDescriptor(IndexMediaType, izb)
	cfg := &Config{FormatVersion: FormatVersion, Arch: HostArch(), GoVersion: o.GoVersion,
		Files: res.Files, Size: res.Bytes, Index: BlobRef{Digest: indexDesc.Digest, Size: int64(len(ib))}, Layers: layers, Caches: o.partialCaches(l)}
	cb, err := encodeJSON(cfg)
	if err != nil {
		return nil, err
	}
	cfgDesc := blobDescriptor(ConfigMediaType, cb)
	for _, blob := range []struct {
		d v1.Descriptor
		b []byte
	}{{indexDesc, izb}, {cfgDesc, cb}} {
		sk, err := s.WriteBlob(ctx, blob.d.Digest, blob.d.Size, func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(string(blob.b))), nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: upload %s: %w", s, blob.d.MediaType, err)
		}
		if sk {
			res.BlobsSkipped++
		} else {
			res.MetaBytes += blob.d.Size
		}
	}
	crashPoint("push-manifest")
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        cfgDesc,
		Layers:        []v1.Descriptor{indexDesc},
		Annotations: map[string]string{
			AnnotationCreated: o.now().UTC().Format(time.RFC3339),
			AnnotationFiles:   strconv.Itoa(res.Files),
		},
	}
	if tag != "" {
		m.Annotations[AnnotationKey] = tag
	}
	if base != nil {
		m.Annotations[AnnotationBase] = base.Digest.String()
	}
	for _, li := range layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: LayerMediaType, Digest: li.Digest, Size: compressedSize(li, packed, base)})
	}
	mb, err := encodeJSON(m)
	if err != nil {
		return nil, err
	}
	d, err := s.PutManifest(ctx, tag, string(types.OCIManifestSchema1), mb)
	if err != nil {
		return nil, fmt.Errorf("%s: put manifest: %w", s, err)
	}
	res.MetaBytes += int64(len(mb))
	res.Digest = d.String()
	log.Debug("pushed snapshot", "store", s.String(), "tag", tag, "digest", res.Digest, "layers", res.Layers, "bytes", res.DataBytes)
	return finish(l, s, tag, res, start, "push")
}

// dropUnhashed removes file entries that packing left without a digest (a
// GOCACHE -d file whose content is not its name yet) and returns how many.
func dropUnhashed(p *plan) int {
	out := p.entries[:0]
	n := 0
	for _, e := range p.entries {
		if e.Type == TypeFile && e.SHA256 == "" {
			n++
			continue
		}
		out = append(out, e)
	}
	p.entries = out
	return n
}

func finish(l mount.Layout, s Store, tag string, res *Result, start time.Time, dir string) (*Result, error) {
	now := time.Now()
	crashPoint(dir + "-record") // "push-record", "pull-record": done, not yet recorded
	if err := recordBase(l, BaseRecord{Store: s.String(), Tag: tag, Digest: res.Digest, Direction: dir, Time: now.UTC()}); err != nil {
		return nil, err
	}
	ref := s.String()
	if tag != "" {
		ref += ":" + tag
	}
	if err := l.WriteLastSnapshot(mount.SnapshotRecord{Direction: dir, Ref: ref, Digest: res.Digest, Time: now.UTC(), Files: res.Files, Bytes: res.Bytes}); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	res.Seconds = res.Duration.Seconds()
	return res, nil
}

// tagOrLatest is the manifest a push to tag overwrites.
func tagOrLatest(tag string) string {
	if tag == "" {
		return "latest"
	}
	return tag
}

// compressedSize finds the blob size of a layer from this push or the base.
func compressedSize(li LayerInfo, packed []*packedLayer, base *Snapshot) int64 {
	for _, p := range packed {
		if p.info.Digest == li.Digest {
			return p.compressed
		}
	}
	if base != nil {
		for _, d := range base.Manifest.Layers {
			if d.Digest == li.Digest {
				return d.Size
			}
		}
	}
	return -1
}

// loadBase fetches the base snapshot for a push, or nil for a full push.
// probeDigest is the digest of zero bytes: a blob no snapshot needs, so
// asking a store for it tests reachability and credentials and nothing else.
var probeDigest = v1.Hash{Algorithm: "sha256", Hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}

func loadBase(ctx context.Context, l mount.Layout, s Store, tag string, log *slog.Logger) *Snapshot {
	rec, err := baseFor(l, s.String(), tag)
	if err != nil {
		log.Warn("unreadable base record; pushing a full snapshot", "err", err)
		return nil
	}
	if rec == nil {
		return nil
	}
	snap, err := FetchSnapshot(ctx, s, rec.Digest)
	if err != nil {
		if !isNotFound(err) {
			log.Warn("cannot read the base snapshot; pushing a full snapshot", "base", rec.Digest, "err", err)
		}
		return nil
	}
	return snap
}

func baseLayersPresent(ctx context.Context, s Store, kept []LayerInfo) bool {
	for _, li := range kept {
		ok, err := s.HasBlob(ctx, li.Digest)
		if err != nil || !ok {
			return false
		}
	}
	return true
}

func blobDescriptor(mt string, b []byte) v1.Descriptor {
	h, n, _ := v1.SHA256(strings.NewReader(string(b)))
	return v1.Descriptor{MediaType: types.MediaType(mt), Digest: h, Size: n}
}

// pushTempDir makes this process's temp dir under the state directory and
// removes those left by pushes that died.
func pushTempDir(l mount.Layout) (string, error) {
	root := filepath.Join(l.State, tmpDirName)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			if pid, ok := tmpOwner(e.Name()); ok && !processAlive(pid) {
				_ = os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	return os.MkdirTemp(root, fmt.Sprintf("push-%d-", os.Getpid()))
}

func tmpOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "push-")
	if !ok {
		return 0, false
	}
	pidStr, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidStr)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func short(d v1.Hash) string {
	if len(d.Hex) > 12 {
		return d.Hex[:12]
	}
	return d.Hex
}

type progressReader struct {
	io.ReadCloser
	add func(int64)
}

func (r *progressReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.add(int64(n))
	}
	return n, err
}

func startProgress(p TransferProgress, name string, size int64) (func(int64), func()) {
	if p == nil {
		return func(int64) {}, func() {}
	}
	return p.Start(name, size)
}
