package oci

import (
	"bytes"
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
	// reference's tag does not exist (newest by created annotation wins);
	// a push picks its delta base among them when this directory has
	// exchanged no snapshot with the store (rule (c) of chooseBase).
	RestoreKeys []string
	// Base forces a push's delta base (ParseBase): a tag or digest in the
	// store, or in another repository of the same registry.
	Base string
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
	// Base is the snapshot a push was a delta of; BaseRule the rule that
	// chose it (BaseRuleForced, ...; "restore-key PREFIX"); BaseStore
	// its repository when not the push's own.
	Base      string `json:"base,omitempty"`
	BaseRule  string `json:"baseRule,omitempty"`
	BaseStore string `json:"baseStore,omitempty"`
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
	// BlobsMounted counts base blobs a push made present by a
	// cross-repository mount instead of an upload.
	BlobsMounted int `json:"blobsMounted,omitempty"`
	// Files and Bytes count the snapshot's files and their size.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// FilesWritten counts files a pull wrote (the rest were reused).
	FilesWritten int `json:"filesWritten,omitempty"`
	// Unchanged: the push found nothing new and wrote nothing.
	Unchanged bool `json:"unchanged,omitempty"`
	// Compacted says why a push repacked files of base layers: everything
	// (--compact, a format 1 base), or the smallest generations, or the
	// mostly dead layers (compact.go).
	Compacted string `json:"compacted,omitempty"`
	ScanStats
	Duration time.Duration `json:"durationNs"`
	Seconds  float64       `json:"seconds"`
}

// Push snapshots the caches of l to s under tag (docs/format.md), as a delta
// against the base chooseBase picks (o.Base, else the newest snapshot this
// directory exchanged with s, else a restore-key match, else one exchanged
// with another repository of the same registry). It holds the layout's
// lock shared: builds (shared holders) may run meanwhile, and a GOCACHE -d
// file still being written is skipped; pull, prune and clean (exclusive)
// wait. The phases are pusher's methods, in the order below.
func Push(ctx context.Context, l mount.Layout, s Store, tag string, o Options) (*Result, error) {
	p := &pusher{ctx: ctx, l: l, s: s, tag: tag, o: o, log: o.log(), start: time.Now(),
		res: &Result{Direction: "push", Store: s.String(), Tag: tag}}
	// The probe needs neither the lock nor the state dir: an unreachable
	// store fails before recovery and the lock create anything in DIR.
	if err := p.probe(); err != nil {
		return nil, err
	}
	if err := p.recover(); err != nil {
		return nil, err
	}
	release, err := l.Acquire(ctx, o.Lock, mount.Shared, o.LockOptions)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := p.scan(); err != nil {
		return nil, err
	}
	if p.short {
		return finish(l, s, tag, p.caches, p.res, p.start, "push")
	}
	if err := p.diff(); err != nil {
		return nil, err
	}
	if p.unchanged() {
		p.saveStatCache(p.base.Digest.String())
		return finish(l, s, tag, p.caches, p.res, p.start, "push")
	}
	tmp, err := pushTempDir(l)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := p.packAndUpload(tmp); err != nil {
		return nil, err
	}
	cfg, chain, err := p.uploadMetadata()
	if err != nil {
		p.saveStatCache("")
		return nil, err
	}
	crashPoint("push-manifest")
	if err := p.writeManifest(cfg, chain); err != nil {
		p.saveStatCache("")
		return nil, err
	}
	p.saveStatCache(p.res.Digest)
	return finish(l, s, tag, p.caches, p.res, p.start, "push")
}

// pusher pushes one snapshot. Its methods are the phases of Push; each
// leaves what the next needs in its fields.
type pusher struct {
	ctx   context.Context
	l     mount.Layout
	s     Store
	tag   string
	o     Options
	log   *slog.Logger
	start time.Time
	res   *Result

	caches    []mount.Cache // set by scan: the caches the snapshot holds (its config's caches)
	entries   []Entry       // set by scan: the caches' entries
	base      *Snapshot     // set by scan, cleared by diff when unusable: the delta's base
	baseStore Store         // set with base: where it lives (s, or a sibling repository)
	keptBlobs baseBlobs     // set by diff: how the kept base layers got into s
	plan      *plan         // set by diff
	stat      *statCache    // set by scan: what it learnt of the files, for the next push
	packed    []*packedLayer
	layers    []LayerInfo // the new config's layers: the base's kept ones, then the packed ones
	tree      string      // set by scan: the walk's treeDigest, "" when racy
	short     bool        // set by scan: the dir is the last push's snapshot, reused (reuseUnchanged)
}

// recover finishes an interrupted restore first: the caches could be half
// swapped.
func (p *pusher) recover() error {
	did, err := RecoverInterrupted(p.ctx, p.l, RecoverOptions{Lock: p.o.Lock, LockOptions: p.o.LockOptions})
	if did != "" {
		p.log.Warn(did)
	}
	return err
}

// probe asks the store a cheap question before scanning and packing, which
// take minutes on a large cache: an unreachable registry, refused
// credentials or a path that is not a layout should fail at once and name
// the store, not after all the work.
func (p *pusher) probe() error {
	if _, err := p.s.HasBlob(p.ctx, probeDigest); err != nil && !isNotFound(err) {
		return err // the stores' errors name the store
	}
	return nil
}

// scan loads the base snapshot and lists the caches. A delta needs every
// file's digest up front; a full push hashes while packing, so each byte
// is hashed once.
func (p *pusher) scan() error {
	caches, err := p.o.pushCaches(p.l)
	if err != nil {
		return err
	}
	p.caches = caches
	// The walk is local and the longest part of an unchanged push: it
	// starts first, and the stat cache, the base and the recorded
	// snapshot's head (network) are read beside it.
	wc := make(chan walked, 1)
	go func() { wc <- walkCaches(p.l, caches) }()
	stat := loadStatCache(p.l, p.log)
	var w walked
	var b *base
	if p.o.Base == "" && !p.o.Compact && stat.pushedTo(p.s, caches) {
		// The short way (unchangedpush.go); the long way then has the walk.
		head := p.recordedHead(stat.pushed.digest)
		w = <-wc
		if w.err == nil && head != nil && stat.sameTree(p.s, caches, w) && p.reuseUnchanged(head) {
			p.short = true
			return nil
		}
		b, err = chooseBase(p.ctx, p.l, p.s, p.tag, &p.o, caches, p.log)
	} else {
		b, err = chooseBase(p.ctx, p.l, p.s, p.tag, &p.o, caches, p.log)
		w = <-wc
	}
	if err != nil {
		return err
	}
	if w.err != nil {
		return w.err
	}
	if b != nil {
		p.base, p.baseStore = b.snap, b.store
		p.res.BaseRule = b.rule
		if b.store != p.s {
			p.res.BaseStore = b.store.String()
		}
	}
	so := scanOptions{jobs: p.o.jobs(), hashAll: p.base != nil, stat: stat, since: p.o.now()}
	p.tree, _ = treeDigest(w.entries, so.since.UnixNano()) // before finishScan reuses the slice
	entries, st, next, err := finishScan(p.ctx, caches, w, so)
	if err != nil {
		return err
	}
	if entries, err = verifyForPush(p.ctx, p.l, caches, entries, p.base, &st, p.log); err != nil {
		return err
	}
	p.entries, p.res.ScanStats, p.stat = entries, st, next
	p.log.Debug("scanned the caches", "entries", len(entries), "hashed all", p.base != nil, "elapsed", time.Since(p.start))
	if st.Writing > 0 {
		p.log.Warn("skipped GOCACHE entries still being written", "count", st.Writing)
	}
	if st.Other > 0 {
		p.log.Warn("skipped entries that are neither files nor directories", "count", st.Other)
	}
	if st.Bad > 0 {
		p.log.Warn("skipped cache entries their verifier found bad", "count", st.Bad, "bytes", st.BadBytes)
	}
	if st.BadName > 0 {
		p.log.Warn("skipped entries whose names a snapshot cannot hold (not UTF-8 or too long)", "count", st.BadName)
	}
	return nil
}

// diff plans the snapshot against the base: which base layers it keeps and
// which files go into new layers, and makes the reused base blobs (kept
// data layers, index documents) present in the store, mounted from the
// base's repository when it is another one; without them it plans a full
// snapshot. A version 1 base has no file positions to keep, so the push
// repacks every file (a compaction).
func (p *pusher) diff() error {
	v1Base := p.base != nil && p.base.Config.FormatVersion != FormatVersion
	p.plan = makePlan(p.entries, p.base, p.o.Compact || v1Base)
	if v1Base && !p.o.Compact {
		p.plan.reason = fmt.Sprintf("the base is format version %d, without file positions", p.base.Config.FormatVersion)
		p.log.Info("pushing a full format 2 snapshot: "+p.plan.reason, "base", p.base.Digest)
	}
	if p.base != nil && !p.plan.compact {
		kb, ok := ensureBlobs(p.ctx, p.s, p.baseStore, reusedDescriptors(p.plan.kept, p.base), p.o.jobs(), p.log)
		if !ok {
			p.base, p.baseStore, p.res.BaseRule, p.res.BaseStore = nil, nil, "", ""
			p.plan = makePlan(p.entries, nil, p.o.Compact)
		}
		p.keptBlobs = kb
		p.res.BlobsMounted = kb.mounted
		p.res.Layers, p.res.DataBytes = kb.copied, kb.bytes
	}
	if p.base != nil {
		p.res.Base = p.base.Digest.String()
	}
	p.res.Compacted = p.plan.reason
	p.res.Files, p.res.Bytes = countFiles(&Index{Entries: p.plan.entries})
	return nil
}

// saveStatCache records what this push learnt of the files (statcache.go),
// adding the digests packing computed. It is an optimisation for the next
// push: failing to write it is logged, not an error.
func (p *pusher) saveStatCache(pushed string) {
	if p.plan != nil {
		p.stat.fillPacked(p.plan.entries, len(p.plan.kept))
	}
	// The snapshot is the walked tree exactly only when no file was left
	// out for being half-written or bad.
	if pushed != "" && p.tree != "" && p.res.Writing == 0 && p.res.Bad == 0 {
		p.stat.pushed = pushedTree{store: p.s.String(), digest: pushed, caches: joinCaches(p.caches), tree: p.tree}
	}
	if err := p.stat.save(p.l); err != nil {
		p.log.Warn("cannot write the stat cache; the next push hashes every file", "err", err)
	}
}

// unchanged reports whether the store's tag still names the base and the
// plan adds nothing to it: then the push writes nothing.
func (p *pusher) unchanged() bool {
	if !p.plan.unchanged || p.base == nil {
		return false
	}
	if _, _, d, err := p.s.GetManifest(p.ctx, tagOrLatest(p.tag)); err != nil || d != p.base.Digest {
		return false
	}
	p.res.Unchanged, p.res.Digest = true, p.base.Digest.String()
	p.res.BlobsSkipped = len(p.base.Manifest.Layers) + 1
	p.log.Debug("unchanged since the last push; nothing uploaded", "digest", p.res.Digest)
	return true
}

// packAndUpload packs the new layers, one per cache, each written once to a
// temp file in tmp while its compressed stream is hashed, and uploads each
// as soon as it is packed (in parallel with packing the next). The caches
// are packed one after the other: each layer's compression already uses
// every core, and one at a time halves the memory in flight. Metadata goes
// after the layers and the manifest last, so a store never holds a manifest
// whose blobs are missing.
func (p *pusher) packAndUpload(tmp string) error {
	p.layers = append([]LayerInfo(nil), p.plan.kept...)
	var skipped, dataBytes atomic.Int64
	g, gctx := errgroup.WithContext(p.ctx)
	for _, c := range p.caches {
		files := p.plan.fresh[c]
		if len(files) == 0 {
			continue
		}
		files = packOrder(c, files)
		pl, err := packLayer(gctx, p.l, c, files, tmp, p.o.jobs())
		if err != nil {
			// A failed upload cancels gctx, and packing then fails with
			// "context canceled": report the upload's error, the cause.
			if werr := g.Wait(); werr != nil {
				return werr
			}
			return err
		}
		pl.info.Generation = p.plan.generation
		for _, e := range files {
			e.Layer, e.Gen = len(p.layers), p.plan.generation
		}
		p.layers = append(p.layers, pl.info)
		p.packed = append(p.packed, pl)
		p.log.Debug("packed layer", "cache", c, "files", len(files), "elapsed", time.Since(p.start))
		g.Go(func() error {
			sk, err := p.uploadLayer(gctx, pl)
			if sk {
				skipped.Add(1)
			} else if err == nil {
				dataBytes.Add(pl.compressed)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Drop the -d files packing found still being written.
	if dropped := dropUnhashed(p.plan); dropped > 0 {
		p.res.Writing += dropped
		p.res.Files, p.res.Bytes = countFiles(&Index{Entries: p.plan.entries})
	}
	p.log.Debug("uploaded data layers", "elapsed", time.Since(p.start))
	p.res.Layers += len(p.packed) - int(skipped.Load())
	p.res.DataBytes += dataBytes.Load()
	p.res.BlobsSkipped = int(skipped.Load()) + p.keptBlobs.present
	return nil
}

// uploadLayer uploads one packed layer, reporting progress; skipped says
// the store had it.
func (p *pusher) uploadLayer(ctx context.Context, pl *packedLayer) (skipped bool, err error) {
	add, done := startProgress(p.o.Progress, "push "+string(pl.info.Cache)+" "+short(pl.info.Digest), pl.compressed)
	defer done()
	sk, err := p.s.WriteBlob(ctx, pl.info.Digest, pl.compressed, func() (io.ReadCloser, error) {
		f, err := os.Open(pl.file)
		if err != nil {
			return nil, err
		}
		return &progressReader{ReadCloser: f, add: add}, nil
	})
	if err != nil {
		return false, fmt.Errorf("%s: upload layer %s: %w", p.s, pl.info.Digest, err)
	}
	crashPoint("push-layer")
	return sk, nil
}

// uploadMetadata uploads the new index document, if the chain needs one
// (index_write.go), and the config, unless the base has the same config
// bytes; it returns the config's and the chain's descriptors.
func (p *pusher) uploadMetadata() (cfgDesc v1.Descriptor, chain *indexChain, err error) {
	chain, err = planIndexChain(p.base, p.plan.entries, p.plan.compact)
	if err != nil {
		return cfgDesc, nil, err
	}
	if p.base != nil && chain.full {
		p.log.Debug("writing a full index: "+chain.reason, "entries", len(p.plan.entries))
	}
	cfg := &Config{FormatVersion: FormatVersion, Arch: HostArch(), GoVersion: p.o.GoVersion,
		Caches: p.caches, Files: p.res.Files, Size: p.res.Bytes, Indexes: chain.refs, Layers: p.layers}
	cb, err := encodeJSON(cfg)
	if err != nil {
		return cfgDesc, nil, err
	}
	cfgDesc = blobDescriptor(ConfigMediaType, cb)
	if chain.upload != nil {
		if err := p.uploadSmall(chain.uploadDesc, chain.upload); err != nil {
			return cfgDesc, nil, err
		}
	}
	if p.base != nil && p.baseStore == p.s && p.base.Manifest.Config.Digest == cfgDesc.Digest {
		p.res.BlobsSkipped++ // the base's config, in this store
		return cfgDesc, chain, nil
	}
	return cfgDesc, chain, p.uploadSmall(cfgDesc, cb)
}

// uploadSmall uploads one metadata blob, counting it in MetaBytes unless
// the store already had it.
func (p *pusher) uploadSmall(d v1.Descriptor, b []byte) error {
	sk, err := p.s.WriteBlob(p.ctx, d.Digest, d.Size, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		return fmt.Errorf("%s: upload %s: %w", p.s, d.MediaType, err)
	}
	if sk {
		p.res.BlobsSkipped++
	} else {
		p.res.MetaBytes += d.Size
	}
	return nil
}

// writeManifest puts the manifest, which makes the snapshot visible under
// the tag: the index chain, then the data layers.
func (p *pusher) writeManifest(cfgDesc v1.Descriptor, chain *indexChain) error {
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        cfgDesc,
		Layers:        append([]v1.Descriptor(nil), chain.descs...),
		Annotations: map[string]string{
			AnnotationCreated: p.o.now().UTC().Format(time.RFC3339),
			AnnotationFiles:   strconv.Itoa(p.res.Files),
		},
	}
	if p.tag != "" {
		m.Annotations[AnnotationKey] = p.tag
	}
	if p.base != nil {
		m.Annotations[AnnotationBase] = p.base.Digest.String()
	}
	for _, li := range p.layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: LayerMediaType, Digest: li.Digest, Size: compressedSize(li, p.packed, p.base)})
	}
	mb, err := encodeJSON(m)
	if err != nil {
		return err
	}
	d, err := p.s.PutManifest(p.ctx, p.tag, string(types.OCIManifestSchema1), mb)
	if err != nil {
		return fmt.Errorf("%s: put manifest: %w", p.s, err)
	}
	p.res.MetaBytes += int64(len(mb))
	p.res.Digest = d.String()
	p.log.Debug("pushed snapshot", "store", p.s.String(), "tag", p.tag, "digest", p.res.Digest, "layers", p.res.Layers, "bytes", p.res.DataBytes)
	return nil
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

// finish records the exchange (the next push's delta base; caches are the
// caches the snapshot exchanged holds, see storeRecord) and the last
// snapshot, and completes res.
func finish(l mount.Layout, s Store, tag string, caches []mount.Cache, res *Result, start time.Time, dir string) (*Result, error) {
	now := time.Now()
	crashPoint(dir + "-record") // "push-record", "pull-record": done, not yet recorded
	var registry string
	if m, ok := s.(BlobMounter); ok {
		registry = m.Registry()
	}
	if err := recordBase(l, registry, caches, BaseRecord{Store: s.String(), Tag: tag, Digest: res.Digest, Direction: dir, Time: now.UTC()}); err != nil {
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

// probeDigest is the digest of zero bytes: a blob no snapshot needs, so
// asking a store for it tests reachability and credentials and nothing else.
var probeDigest = v1.Hash{Algorithm: "sha256", Hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}

func blobDescriptor(mt string, b []byte) v1.Descriptor {
	h, n, _ := v1.SHA256(strings.NewReader(string(b)))
	return v1.Descriptor{MediaType: types.MediaType(mt), Digest: h, Size: n}
}

// pushTempDir makes this process's temp dir under the state directory and
// removes those left by pushes that died.
// tmp must be a real directory inside the verified state directory: a link
// planted there (the build can write the state directory) is refused, not
// written through.
func pushTempDir(l mount.Layout) (string, error) {
	state, err := l.OpenState(true)
	if err != nil {
		return "", err
	}
	err = l.StateSubdir(state, tmpDirName, true)
	state.Close()
	if err != nil {
		return "", err
	}
	root := filepath.Join(l.State, tmpDirName)
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
