package oci

import (
	"crypto/sha256"
	"encoding/binary"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/mount"
)

// pushedTree is what the stat cache remembers of the push that wrote it
// when that push's snapshot indexed exactly the tree it walked (no file
// skipped as still being written or bad): the store, the snapshot's
// digest, its caches and a digest of the walk (treeDigest).
//
// Why: a push of an unchanged dir under a new tag (a new cache key over the
// same caches) makes the same snapshot again. Finding that out the long way
// fetches and decodes the base's whole index (tens of ms per 10k entries)
// and compares every file; issue 13 allows such a push at most 10% of a
// full push. When the walk is the same as that push's, and no file was
// changed within racyWindow of that push's start (racy-git's rule, as for
// the stat cache's records), the dir still holds that snapshot: the push
// fetches only its manifest and config and writes a new manifest.
//
// The stat cache lives in DIR/.melcache, which a build can write: a forged
// pushedTree can at worst make a push tag a snapshot of this store that
// the dir no longer matches, the trust the stat cache's digests already
// have (docs/format.md, "Stat cache"). It cannot put content in a snapshot:
// the snapshot named is fetched and verified, and is reused as it is.
type pushedTree struct {
	store, digest, caches, tree string
}

// treeDigest digests what the walk saw of each entry: cache, path, type,
// mode and, for files, size, mtime, ctime and inode. ok is false when an
// entry changed within racyWindow of since (Unix ns): then a later walk
// that looks the same proves nothing.
func treeDigest(entries []Entry, since int64) (digest string, ok bool) {
	h := sha256.New()
	limit := since - int64(racyWindow)
	var b []byte
	for i := range entries {
		e := &entries[i]
		b = append(b[:0], e.Cache...)
		b = append(b, 0)
		b = append(b, e.Path...)
		b = append(b, 0)
		b = append(b, e.Type...)
		b = append(b, 0)
		b = binary.AppendUvarint(b, uint64(e.Mode))
		if e.Type == TypeFile {
			if e.st.mtime >= limit || e.st.ctime >= limit {
				return "", false
			}
			b = binary.AppendVarint(b, e.st.size)
			b = binary.AppendVarint(b, e.st.mtime)
			b = binary.AppendVarint(b, e.st.ctime)
			b = binary.AppendUvarint(b, e.st.ino)
		}
		h.Write(b)
	}
	return string(h.Sum(nil)), true
}

// pushedTo reports whether the recording push pushed a whole walked tree
// of caches to s.
func (sc *statCache) pushedTo(s Store, caches []mount.Cache) bool {
	return sc != nil && sc.pushed.digest != "" && sc.pushed.store == s.String() && sc.pushed.caches == joinCaches(caches)
}

// sameTree reports whether the walk w of caches in store s is the tree the
// recording push pushed as pushed.digest.
func (sc *statCache) sameTree(s Store, caches []mount.Cache, w walked) bool {
	if !sc.pushedTo(s, caches) {
		return false
	}
	t, ok := treeDigest(w.entries, sc.since)
	return ok && t == sc.pushed.tree
}

// recordedHead fetches the manifest and config of the snapshot a stat
// cache's pushedTree names, or nil.
func (p *pusher) recordedHead(digest string) *Snapshot {
	d, err := v1.NewHash(digest)
	if err != nil || d.Algorithm != "sha256" {
		return nil
	}
	snap, err := fetchHead(p.ctx, p.s, digest)
	if err != nil {
		p.log.Debug("the snapshot the stat cache names is unusable; taking the long way", "digest", digest, "err", err)
		return nil
	}
	return snap
}

// reuseUnchanged is the short way for a push whose walk matches the stat
// cache's pushedTree, snap (recordedHead): when its manifest and config
// still hold what this push would write (same caches, Go version, arch),
// it writes a new manifest naming the same config and layers (or nothing,
// when the tag names them already). false: the long way.
func (p *pusher) reuseUnchanged(snap *Snapshot) bool {
	digest := snap.Digest.String()
	c := snap.Config
	if c.FormatVersion != FormatVersion || c.Arch != HostArch() || c.GoVersion != p.o.GoVersion || joinCaches(c.Caches) != joinCaches(p.caches) {
		return false
	}
	saved := *p.res
	p.base, p.baseStore = snap, p.s
	p.res.BaseRule, p.res.Base = BaseRuleExchanged, snap.Digest.String()
	p.res.Files, p.res.Bytes = c.Files, c.Size
	p.res.BlobsSkipped = len(snap.Manifest.Layers) + 1
	p.log.Info("delta base", "rule", BaseRuleExchanged, "store", p.s.String(), "digest", digest)
	p.log.Debug("the caches are as the last push left them: reusing its snapshot")
	if cur, ok := p.tagHolds(snap); ok {
		p.res.Unchanged, p.res.Digest = true, cur
		return true
	}
	p.layers = c.Layers
	chain := &indexChain{refs: c.Indexes, descs: snap.Manifest.Layers[:len(c.Indexes)]}
	if err := p.writeManifest(snap.Manifest.Config, chain); err != nil {
		p.log.Debug("writing the manifest failed; taking the long way", "err", err)
		// The long way must not see the head-only snapshot (no index) as
		// its base, nor this attempt's counts.
		p.base, p.baseStore, p.layers, *p.res = nil, nil, nil, saved
		return false
	}
	return true
}

// tagHolds reports whether the push's tag names snap, or a manifest with
// snap's config and layers (one an earlier reuseUnchanged wrote), and its
// digest: then there is nothing to write.
func (p *pusher) tagHolds(snap *Snapshot) (string, bool) {
	mt, mb, cur, err := p.s.GetManifest(p.ctx, tagOrLatest(p.tag))
	if err != nil {
		return "", false
	}
	if cur == snap.Digest {
		return cur.String(), true
	}
	m, err := parseManifest(mt, mb)
	if err != nil || m.Config.Digest != snap.Manifest.Config.Digest || len(m.Layers) != len(snap.Manifest.Layers) {
		return "", false
	}
	for i, d := range m.Layers {
		if d.Digest != snap.Manifest.Layers[i].Digest || d.Size != snap.Manifest.Layers[i].Size {
			return "", false
		}
	}
	return cur.String(), true
}
