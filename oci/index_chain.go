package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/mount"
)

// The index chain (docs/format.md, "Index documents"): a snapshot's index is
// a list of documents, oldest first. The first holds every entry; each later
// one holds the entries added or changed since, and the deletions. A reader
// applies them in order.

// indexDoc is one document of the chain, as read.
type indexDoc struct {
	FormatVersion int        `json:"formatVersion"`
	Entries       []Entry    `json:"entries"`
	Deleted       []EntryRef `json:"deleted,omitempty"`
}

// EntryRef names an entry a later index document deletes.
type EntryRef struct {
	Cache mount.Cache `json:"cache"`
	Path  string      `json:"path"`
}

// readIndexChain fetches every index document of the chain (descriptors
// ds, config refs) and returns the applied index, not yet materialised, and
// the documents' compressed bytes. A version 1 snapshot has one document of
// its own shape, whose entries name their layer.
func readIndexChain(ctx context.Context, s Store, ds []v1.Descriptor, c *Config) (*Index, int64, error) {
	var total int64
	a := newChainApplier(c.Indexes)
	for i, d := range ds {
		b, zn, err := readIndexBlob(ctx, s, d, c.Indexes[i].Size)
		if err != nil {
			return nil, 0, err
		}
		total += zn
		if c.FormatVersion == formatVersion1 {
			x, err := decodeIndexV1(b)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: index %s: %w", s, d.Digest, err)
			}
			return x, total, nil
		}
		var doc indexDoc
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, 0, fmt.Errorf("%s: index %s: %w", s, d.Digest, err)
		}
		if err := a.apply(i, &doc); err != nil {
			return nil, 0, fmt.Errorf("%s: index %s: %w", s, d.Digest, err)
		}
	}
	return a.result(), total, nil
}

// readIndexBlob reads one index blob and decompresses it to exactly size
// bytes, the size the config declares.
// indexHintRatio bounds the buffer readIndexBlob allocates before reading:
// index documents (JSON of hex digests and paths) compress about 3-6x at
// zstd's fastest level, so 16x leaves room without letting a tiny blob
// that declares a huge size allocate it before a byte is read.
const indexHintRatio = 16

func readIndexBlob(ctx context.Context, s Store, d v1.Descriptor, size int64) ([]byte, int64, error) {
	zb, err := readSmallBlob(ctx, s, d, maxIndexBytes)
	if err != nil {
		return nil, 0, err
	}
	dec, err := newDecoder(bytes.NewReader(zb))
	if err != nil {
		return nil, 0, err
	}
	defer dec.Close()
	// Sized up front (io.ReadAll's doubling copies cost a push of an
	// unchanged 8.5k-entry cache about a fifth of its time), but from the
	// compressed size too: the declared size is the config's word, and
	// needs no trust to be a hint.
	// bytes.MinRead past the end: a Buffer with less room than that grows
	// (doubling) before the read that finds EOF.
	buf := bytes.NewBuffer(make([]byte, 0, min(size, indexHintRatio*int64(len(zb)))+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(dec, size+1)); err != nil {
		return nil, 0, fmt.Errorf("%s: index %s: %w", s, d.Digest, err)
	}
	b := buf.Bytes()
	if int64(len(b)) != size {
		return nil, 0, verifyErrorf("%s: index %s decompresses to %d bytes, config declares %d", s, d.Digest, len(b), size)
	}
	return b, int64(len(zb)), nil
}

// chainApplier applies index documents in order.
type chainApplier struct {
	refs    []IndexRef
	entries []Entry
	gone    []bool           // per entries[i]: deleted by a later document
	pos     map[entryKey]int // live entries by (cache, path)
}

func newChainApplier(refs []IndexRef) *chainApplier {
	return &chainApplier{refs: refs, pos: map[entryKey]int{}}
}

// apply applies document i: each entry replaces the entry with its (cache,
// path), each deletion removes one that must exist. A document names an
// entry at most once.
func (a *chainApplier) apply(i int, d *indexDoc) error {
	switch {
	case d.FormatVersion != FormatVersion:
		return fmt.Errorf("index document format version %d; want %d", d.FormatVersion, FormatVersion)
	case len(d.Entries)+len(d.Deleted) != a.refs[i].Entries:
		return fmt.Errorf("index document holds %d entries and deletions, config declares %d", len(d.Entries)+len(d.Deleted), a.refs[i].Entries)
	case i == 0 && len(d.Deleted) > 0:
		return fmt.Errorf("the first index document deletes entries")
	}
	if len(a.refs) == 1 {
		// One full document: nothing to replace, and checkIndex refuses
		// duplicates, so no map is needed.
		a.entries, a.gone = d.Entries, make([]bool, len(d.Entries))
		return nil
	}
	var seen map[entryKey]bool // the first document uses pos itself
	if i > 0 {
		seen = make(map[entryKey]bool, len(d.Entries)+len(d.Deleted))
	}
	twice := func(k entryKey) bool {
		if seen == nil {
			_, dup := a.pos[k]
			return dup
		}
		dup := seen[k]
		seen[k] = true
		return dup
	}
	for _, r := range d.Deleted {
		k := entryKey{r.Cache, r.Path}
		j, ok := a.pos[k]
		if twice(k) || !ok {
			return fmt.Errorf("index document deletes %s/%s, which is not in the index or named twice", r.Cache, r.Path)
		}
		a.gone[j] = true
		delete(a.pos, k)
	}
	for _, e := range d.Entries {
		k := e.id()
		if twice(k) {
			return fmt.Errorf("duplicate entry %s/%s in one index document", e.Cache, e.Path)
		}
		if j, ok := a.pos[k]; ok {
			a.entries[j] = e
			continue
		}
		a.pos[k] = len(a.entries)
		a.entries = append(a.entries, e)
		a.gone = append(a.gone, false)
	}
	return nil
}

// result is the applied chain, sorted by (cache, path).
func (a *chainApplier) result() *Index {
	out := a.entries[:0]
	for i, e := range a.entries {
		if !a.gone[i] {
			out = append(out, e)
		}
	}
	if !sort.SliceIsSorted(out, func(i, j int) bool { return entryLess(&out[i], &out[j]) }) {
		sortEntries(out)
	}
	return &Index{FormatVersion: FormatVersion, Entries: out}
}

// materialise sets each file entry's Layer from its (cache, gen); a
// version 1 index names its layers itself. checkIndex follows.
func materialise(x *Index, c *Config) error {
	if c.FormatVersion == formatVersion1 {
		return nil
	}
	layers := make(map[layerKey]int, len(c.Layers))
	for i, l := range c.Layers {
		layers[layerKey{l.Cache, l.Generation}] = i
	}
	for i := range x.Entries {
		e := &x.Entries[i]
		if e.Type != TypeFile {
			continue
		}
		li, ok := layers[layerKey{e.Cache, e.Gen}]
		if !ok {
			return fmt.Errorf("snapshot index: %s/%s names generation %d, which has no %s layer", e.Cache, e.Path, e.Gen, e.Cache)
		}
		e.Layer = li
	}
	return nil
}

// entryLess is the index order: by cache, then path, bytewise.
func entryLess(a, b *Entry) bool {
	if a.Cache != b.Cache {
		return a.Cache < b.Cache
	}
	return a.Path < b.Path
}
