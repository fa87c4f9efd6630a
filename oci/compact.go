package oci

import (
	"sort"
)

// keepGenerations is how many base generations a push that went over
// maxGenerations keeps: the ones holding the most live bytes. The files of
// every other generation are repacked into the push's new one.
//
// Why not repack everything (what a compaction did before): in a fleet,
// the big early generations are what every builder already holds, and a
// full repack gives them new digests. The push then uploads the whole cache
// and every other builder downloads the whole new layer (a merge pull
// fetches a layer as soon as it lacks one file of it): bench/fleet.sh saw
// pushes of 79 and 319 MB, and four pulls of 80–327 MB, where the deltas
// were a few MB. Merging only the small generations, like an LSM tree's
// size-tiered compaction, uploads about their sum and leaves the big layers
// alone. Half of maxGenerations leaves room for that many deltas before the
// next merge.
const keepGenerations = maxGenerations / 2

// keepLargestGenerations returns the base layers (of keptIdx, indexes into
// base.Config.Layers) of the keepGenerations generations with the most live
// bytes (ties: the older), and how many generations it leaves out.
func keepLargestGenerations(base *Snapshot, keptIdx []int, live map[int]int64) ([]int, int) {
	genLive := map[int]int64{}
	for _, i := range keptIdx {
		genLive[base.Config.Layers[i].Generation] += live[i]
	}
	order := make([]int, 0, len(genLive))
	for g := range genLive {
		order = append(order, g)
	}
	sort.Slice(order, func(a, b int) bool {
		if genLive[order[a]] != genLive[order[b]] {
			return genLive[order[a]] > genLive[order[b]]
		}
		return order[a] < order[b]
	})
	keep := map[int]bool{}
	for _, g := range order[:min(keepGenerations, len(order))] {
		keep[g] = true
	}
	var out []int
	for _, i := range keptIdx {
		if keep[base.Config.Layers[i].Generation] {
			out = append(out, i)
		}
	}
	return out, len(order) - len(keep)
}

// dropDeadLayers returns the base layers of keptIdx whose own dead share is
// at most maxDeadFraction, and how many it leaves out (their live files are
// repacked). When dead bytes exceed maxDeadFraction of the whole, some layer
// does too, and once those are repacked every remaining layer, so the
// whole, is within it; layers with few dead bytes keep their digests, which
// other builders already hold (see keepGenerations).
func dropDeadLayers(base *Snapshot, keptIdx []int, live map[int]int64) ([]int, int) {
	var out []int
	for _, i := range keptIdx {
		li := base.Config.Layers[i]
		if float64(layerDead(li, live[i])) <= maxDeadFraction*float64(li.Size) {
			out = append(out, i)
		}
	}
	return out, len(keptIdx) - len(out)
}

// layerDead is the tar bytes of layer li that no index entry points at, of
// which live bytes are live (two zero blocks end every tar stream).
func layerDead(li LayerInfo, live int64) int64 {
	return max(0, li.Size-2*tarBlock-live)
}
