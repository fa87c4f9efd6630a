package oci

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/melcache/melcache/mount"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/sync/errgroup"
)

// verifyModules checks downloaded module zips against their .ziphash and
// module trees with downloaded files against the .ziphash of their version.
// The work is linear in the number of index entries: each module cache file
// is assigned to its tree by one map lookup and hashed into that tree's
// dirhash once (a pull of 2,000 module versions × 100 files used to spend
// 36 s matching every file against every tree: issue 11, finding 8).
func verifyModules(ctx context.Context, l mount.Layout, snap *Snapshot, reuse map[string]bool,
	newPath func(mount.Cache, string) string, jobs int) error {
	return verifyModulesCounted(ctx, snap, reuse, newPath, jobs, nil)
}

// verifyModulesCounted is verifyModules with a probe: visit, when set, is
// called with ("lookup", path) each time a module cache file is matched
// to its tree and with ("hash", path) each time its line is hashed into a
// tree hash. Tests count the calls to prove the work per file is constant.
func verifyModulesCounted(ctx context.Context, snap *Snapshot, reuse map[string]bool,
	newPath func(mount.Cache, string) string, jobs int, visit func(what, path string)) error {
	if visit == nil {
		visit = func(string, string) {}
	}
	zips := map[string]bool{}
	// trees maps each module tree (its path up to the first component
	// holding "@") with at least one downloaded file to all its files,
	// reused ones included: the dirhash covers the whole tree.
	trees := map[string][]Entry{}
	var treeOf []string // per entry: its tree, "" when none
	for _, e := range snap.Index.Entries {
		root := ""
		if e.Cache == mount.GoModCache && e.Type == TypeFile {
			if rest, ok := strings.CutPrefix(e.Path, "cache/download/"); ok {
				if !reuse[e.key()] && strings.HasSuffix(rest, ".zip") && strings.Contains(rest, "/@v/") {
					zips[e.Path] = true
				}
			} else {
				visit("lookup", e.Path)
				root = moduleTreeRoot(e.Path)
				if root != "" && !reuse[e.key()] {
					trees[root] = nil
				}
			}
		}
		treeOf = append(treeOf, root)
	}
	for i, e := range snap.Index.Entries {
		// A file named like a tree root is not in a tree.
		if files, ok := trees[treeOf[i]]; ok && len(e.Path) > len(treeOf[i]) {
			trees[treeOf[i]] = append(files, e)
		}
	}
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(max(1, jobs))
	for z := range zips {
		g.Go(func() error {
			want, err := os.ReadFile(newPath(mount.GoModCache, strings.TrimSuffix(z, ".zip")+".ziphash"))
			if err != nil {
				return nil // no .ziphash: Go itself will not trust the zip
			}
			got, err := dirhash.HashZip(newPath(mount.GoModCache, z), dirhash.Hash1)
			if err != nil {
				return verifyErrorf("module zip %s: %v", z, err)
			}
			if got != strings.TrimSpace(string(want)) {
				return verifyErrorf("module zip %s hashes to %s, its .ziphash says %s", z, got, strings.TrimSpace(string(want)))
			}
			return nil
		})
	}
	// Trees are checked from the index: every file written was verified
	// against its index SHA-256 and every reused file matched it, so the
	// dirhash (a SHA-256 over "sha256  name" lines) needs no second read.
	for t, files := range trees {
		i := strings.LastIndex(t, "@")
		escMod, escVer := t[:i], t[i+1:]
		mod, err1 := module.UnescapePath(escMod)
		ver, err2 := module.UnescapeVersion(escVer)
		if err1 != nil || err2 != nil {
			continue // not a module tree Go made
		}
		want, err := os.ReadFile(newPath(mount.GoModCache, "cache/download/"+escMod+"/@v/"+escVer+".ziphash"))
		if err != nil {
			continue
		}
		got := treeHash(mod+"@"+ver, t, files, visit)
		if got != strings.TrimSpace(string(want)) {
			g.Wait()
			return verifyErrorf("module tree %s hashes to %s, its .ziphash says %s", t, got, strings.TrimSpace(string(want)))
		}
	}
	return g.Wait()
}

// moduleTreeRoot returns the extracted module tree p lies in: p up to its
// first component holding "@" ("example.com/m@v1.0.0"), or "" when none.
func moduleTreeRoot(p string) string {
	off := 0
	for {
		i := strings.IndexByte(p[off:], '/')
		comp := p[off:]
		if i >= 0 {
			comp = p[off : off+i]
		}
		if strings.Contains(comp, "@") {
			return p[:off+len(comp)]
		}
		if i < 0 {
			return ""
		}
		off += i + 1
	}
}

// treeHash is dirhash.Hash1 of the tree at root whose files are given as
// index entries (their SHA-256 as recorded): "h1:" and the base64 SHA-256
// over sorted "sha  prefix/relpath" lines.
func treeHash(prefix, root string, files []Entry, visit func(what, path string)) string {
	type fl struct{ name, sum, path string }
	fs := make([]fl, 0, len(files))
	for _, e := range files {
		fs = append(fs, fl{prefix + "/" + e.Path[len(root)+1:], e.SHA256, e.Path})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].name < fs[j].name })
	h := sha256.New()
	for _, f := range fs {
		visit("hash", f.path)
		fmt.Fprintf(h, "%s  %s\n", f.sum, f.name)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}
