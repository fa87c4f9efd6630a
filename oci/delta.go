package oci

import (
	"fmt"

	"github.com/melcache/melcache/mount"
)

// tarBlock is the tar record size: a member costs a 512-byte header plus its
// content rounded up to 512 bytes.
const tarBlock = 512

// tarSizeOf is the tar stream bytes a file of size n takes.
func tarSizeOf(n int64) int64 { return tarBlock + (n+tarBlock-1)/tarBlock*tarBlock }

// plan is what a push will write: the new index, the base layers it keeps
// and the files that go into new layers.
type plan struct {
	// entries is the new index; file entries have Layer set to an index
	// into layers, or -1 for a file packed into the new layer of its cache.
	entries []Entry
	// kept lists the base config's layers the new snapshot keeps, in order.
	kept []LayerInfo
	// fresh holds, per cache, the files to pack into a new layer.
	fresh map[mount.Cache][]*Entry
	// generation is the generation of the new layers.
	generation int
	// compact says every file is repacked; reason says why.
	compact bool
	reason  string
	// unchanged: no new layer, same layers and same index as the base.
	unchanged bool
}

// makePlan compares local entries with the base snapshot by (cache, path)
// and content, as sameFile decides (docs/format.md, "Deltas" and
// "Compaction").
func makePlan(local []Entry, base *Snapshot, forceCompact bool) *plan {
	p := &plan{generation: 1}
	var baseFiles map[string]*Entry
	if base != nil {
		p.generation = base.Config.MaxGeneration() + 1
		baseFiles = make(map[string]*Entry, len(base.Index.Entries))
		for i := range base.Index.Entries {
			if e := &base.Index.Entries[i]; e.Type == TypeFile {
				baseFiles[e.key()] = e
			}
		}
	}
	p.entries = append([]Entry(nil), local...)
	live := map[int]int64{} // base layer -> tar bytes of live files
	var freshBytes int64
	for i := range p.entries {
		e := &p.entries[i]
		if e.Type != TypeFile {
			continue
		}
		e.Layer = -1
		if b := baseFiles[e.key()]; b != nil && sameFile(e, b) {
			keepBase(e, b)
			live[b.Layer] += tarSizeOf(e.Size)
		} else {
			freshBytes += tarSizeOf(e.Size)
		}
	}
	// Which base layers stay, and how much of them is dead.
	var keptIdx []int
	var keptBytes, deadBytes int64
	gens := map[int]bool{}
	if base != nil {
		for i, li := range base.Config.Layers {
			if _, ok := live[i]; !ok {
				continue
			}
			keptIdx = append(keptIdx, i)
			keptBytes += li.Size
			// Two zero blocks end every tar stream.
			deadBytes += layerDead(li, live[i])
			gens[li.Generation] = true
		}
	}
	if freshBytes > 0 {
		gens[p.generation] = true
	}
	switch {
	case forceCompact:
		p.compact, p.reason = true, "--compact"
		keptIdx = nil
	case len(gens) > maxGenerations:
		var merged int
		keptIdx, merged = keepLargestGenerations(base, keptIdx, live)
		p.reason = fmt.Sprintf("%d generations (over %d): the %d smallest repacked into generation %d",
			len(gens), maxGenerations, merged, p.generation)
	case keptBytes+freshBytes > 0 && float64(deadBytes) > maxDeadFraction*float64(keptBytes+freshBytes):
		var merged int
		keptIdx, merged = dropDeadLayers(base, keptIdx, live)
		p.reason = fmt.Sprintf("%.0f%% dead bytes (over %.0f%%): %d layers repacked into generation %d",
			100*float64(deadBytes)/float64(keptBytes+freshBytes), 100*maxDeadFraction, merged, p.generation)
	}
	remap := map[int]int{}
	for n, i := range keptIdx {
		remap[i] = n
		p.kept = append(p.kept, base.Config.Layers[i])
	}
	p.fresh = map[mount.Cache][]*Entry{}
	for i := range p.entries {
		e := &p.entries[i]
		if e.Type != TypeFile {
			continue
		}
		if n, ok := remap[e.Layer]; ok && e.Layer >= 0 {
			e.Layer = n
		} else {
			e.Layer = -1
			p.fresh[e.Cache] = append(p.fresh[e.Cache], e)
		}
	}
	p.unchanged = base != nil && p.reason == "" && len(p.fresh) == 0 && len(p.kept) == len(base.Config.Layers) &&
		sameEntries(p.entries, base.Index.Entries)
	return p
}

func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].sameAs(&b[i]) {
			return false
		}
	}
	return true
}

// keepBase makes local entry e, the same file as base entry b (sameFile),
// keep b's indexed content and place: its sha256 (which, for a GOCACHE -a
// entry differing only in its time field, is not the local bytes' digest),
// layer, generation, position and goTime. The local mode stays.
func keepBase(e, b *Entry) {
	e.SHA256, e.Layer, e.Gen, e.Offset, e.Frame, e.GoTime = b.SHA256, b.Layer, b.Gen, b.Offset, b.Frame, b.GoTime
}
