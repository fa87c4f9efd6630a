package oci

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// How a push extends the index chain (docs/format.md, "Index documents").
const (
	// maxIndexChain bounds the documents a reader fetches and applies
	// before a pull can start: each is one more round trip. It matches
	// maxGenerations, so the chain is never longer than the layer history
	// it describes; a push that would make it longer writes one full
	// document instead.
	maxIndexChain = 8
	// maxChainShare: when the delta documents would total more than this
	// share of the full document (uncompressed), a reader would fetch and
	// parse more than a full document saves the pusher, so the push writes
	// the full document. At 1/2 a chain costs a reader at most 1.5x a
	// full index.
	maxChainShare = 0.5
)

// indexChain is the index chain a push writes into its manifest.
type indexChain struct {
	refs  []IndexRef
	descs []v1.Descriptor
	// upload is the new document (compressed), nil when the chain is the
	// base's unchanged; uploadDesc its descriptor.
	upload     []byte
	uploadDesc v1.Descriptor
	// full says the chain is one new full document, and why.
	full   bool
	reason string
}

// planIndexChain chooses the chain for a push whose materialised index is
// entries: the base's chain plus one delta document, the base's chain alone
// when nothing changed, or one full document (fullIndexReason, the length
// and size rules).
func planIndexChain(base *Snapshot, entries []Entry, compacted bool) (*indexChain, error) {
	if why := fullIndexReason(base, compacted); why != "" {
		return fullChain(entries, why)
	}
	changed, deleted := diffIndex(base.Index.Entries, entries)
	if len(changed)+len(deleted) == 0 {
		return &indexChain{refs: base.Config.Indexes, descs: base.IndexLayers()}, nil
	}
	if n := len(base.Config.Indexes) + 1; n > maxIndexChain {
		return fullChain(entries, fmt.Sprintf("the index chain would hold %d documents (over %d)", n, maxIndexChain))
	}
	db, err := encodeIndexDoc(changed, deleted)
	if err != nil {
		return nil, err
	}
	fb, err := encodeIndexDoc(entries, nil)
	if err != nil {
		return nil, err
	}
	deltas := int64(len(db))
	for _, r := range base.Config.Indexes[1:] {
		deltas += r.Size
	}
	if float64(deltas) > maxChainShare*float64(len(fb)) {
		return fullDoc(fb, len(entries), fmt.Sprintf("the index deltas would total %d bytes, over %.0f%% of the full index's %d", deltas, 100*maxChainShare, len(fb)))
	}
	c, err := fullDoc(db, len(changed)+len(deleted), "")
	if err != nil {
		return nil, err
	}
	c.full = false
	c.refs = append(append([]IndexRef(nil), base.Config.Indexes...), c.refs...)
	c.descs = append(append([]v1.Descriptor(nil), base.IndexLayers()...), c.descs...)
	return c, nil
}

// fullIndexReason says why a push cannot extend the base's chain, "" when
// it can.
func fullIndexReason(base *Snapshot, compacted bool) string {
	switch {
	case base == nil:
		return "no base snapshot"
	case base.Config.FormatVersion != FormatVersion:
		return fmt.Sprintf("the base is format version %d", base.Config.FormatVersion)
	case compacted:
		return "the data layers are compacted"
	}
	return ""
}

// fullChain is a chain of one document holding every entry.
func fullChain(entries []Entry, why string) (*indexChain, error) {
	b, err := encodeIndexDoc(entries, nil)
	if err != nil {
		return nil, err
	}
	return fullDoc(b, len(entries), why)
}

// fullDoc compresses document b (n entries and deletions) into a chain of
// that one document.
func fullDoc(b []byte, n int, why string) (*indexChain, error) {
	zb, err := compressBytes(b)
	if err != nil {
		return nil, err
	}
	d := blobDescriptor(IndexMediaType, zb)
	return &indexChain{refs: []IndexRef{{Digest: d.Digest, Size: int64(len(b)), Entries: n}},
		descs: []v1.Descriptor{d}, upload: zb, uploadDesc: d, full: true, reason: why}, nil
}

// diffIndex lists the entries of cur that are new or differ from base in a
// stored field, and the base entries cur lacks. Both are sorted (index
// order), so one merge pass does it.
func diffIndex(base, cur []Entry) (changed []Entry, deleted []EntryRef) {
	i, j := 0, 0
	for i < len(base) || j < len(cur) {
		switch {
		case j == len(cur) || i < len(base) && entryLess(&base[i], &cur[j]):
			deleted = append(deleted, EntryRef{Cache: base[i].Cache, Path: base[i].Path})
			i++
		case i == len(base) || entryLess(&cur[j], &base[i]):
			changed = append(changed, cur[j])
			j++
		default:
			if !cur[j].sameStored(&base[i]) {
				changed = append(changed, cur[j])
			}
			i, j = i+1, j+1
		}
	}
	return changed, deleted
}
