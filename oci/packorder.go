package oci

import (
	"sort"

	"github.com/melcache/melcache/mount"
)

// packOrder returns es (one cache's files, sorted by path) in the order a
// data layer packs them (docs/format.md, "Data layers"): a GOCACHE layer
// groups each action entry with the outputs it names and orders those
// groups by the action entry's time field, the time Go computed the action.
//
// Why: a lazy reader (melcache cacheprog REF) fetches whole zstd frames. A
// build reads the objects one earlier build wrote, and Go writes them in
// dependency order within a few seconds; packed by path, which is by hash,
// one program's objects are spread evenly over every frame of a cache that
// holds many programs, so a build that needs a tenth of the objects still
// fetches nearly every frame. Grouped by time, they sit in a few runs of
// neighbouring frames. The order comes only from the files' content (the
// time field is in the -a file), so the same files still give the same
// layer on any machine. Readers do not depend on it: every entry's offset
// is in the index.
//
// Files without a time (outputs no packed action names, other GOCACHE
// files, every other cache) keep path order, ahead of the timed groups.
func packOrder(c mount.Cache, es []*Entry) []*Entry {
	if c != mount.GoCache {
		return es
	}
	actionTime := map[string]int64{} // output id -> earliest action time naming it
	for _, e := range es {
		if kind, id := kindOf(e); kind == kindAction {
			out := outputOf(e, id)
			if out == "" {
				continue
			}
			if t, ok := actionTime[out]; !ok || e.GoTime < t {
				actionTime[out] = e.GoTime
			}
		}
	}
	key := make(map[*Entry]int64, len(es))
	for _, e := range es {
		switch kind, _ := kindOf(e); kind {
		case kindAction:
			key[e] = e.GoTime
		case kindOutput:
			if id, ok := goCacheDataID(e.Path); ok {
				key[e] = actionTime[id]
			}
		}
	}
	out := append([]*Entry(nil), es...)
	// Stable on a path-sorted input: ties (untimed files, or an action and
	// its outputs) stay in path order.
	sort.SliceStable(out, func(i, j int) bool { return key[out[i]] < key[out[j]] })
	return out
}

// outputOf is the output id the GOCACHE action entry e (action id id)
// names: from the scan (which read the file, or trusted a stat cache
// record that knew it), else from the file's first bytes now (a record a
// melcache before packOrder wrote). "" when the file cannot be read or
// parsed: it is then packed as an untimed
// file, and packing reads and checks it as always.
func outputOf(e *Entry, id string) string {
	if e.st.out != "" || e.st.root == "" {
		return e.st.out
	}
	var small [2 * headSize]byte
	cp := *e // readFile sets the time field too: keep e's as scanned
	if err := readFile(&cp, kindAction, id, false, small[:]); err != nil {
		return ""
	}
	e.st.out = cp.st.out // for the stat cache (fillPacked)
	return e.st.out
}
