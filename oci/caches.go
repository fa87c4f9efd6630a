package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/melcache/melcache/mount"
)

// melange's other caches in snapshots (issue 15, docs/caches.md): npm, pip,
// uv, composer and m2repository are directories of DIR like the Go caches
// and are packed, deltaed, staged and swapped the same way. The fetch cache
// has no root: its files are DIR's own entries named sha256:<hex> or
// sha512:<hex> (mount.FetchDigest), so it is scanned from DIR's top level
// only, and swapped in file by file (fetchswap.go). Every other entry of
// DIR (apks, .melcache, unknown files) is never read or touched.

// cacheRoot is where cache c's files live: its root directory, or DIR for
// the fetch cache (whose index paths are names in DIR); "" when the layout
// has no such cache.
func cacheRoot(l mount.Layout, c mount.Cache) string {
	if c == mount.FetchCache {
		if l.Mode == mount.Recipe {
			return ""
		}
		return l.Dir
	}
	return l.CacheDir(c)
}

// isGoCache reports whether c is one of the Go caches, which have their
// own checks (module zips and trees, -d names) rather than a verifier.
func isGoCache(c mount.Cache) bool { return c == mount.GoModCache || c == mount.GoCache }

// walkFetch appends the fetch cache's entries: DIR's regular files named by
// mount.FetchDigest. Links, directories and every other name are not the
// fetch cache's and are neither read nor counted.
func walkFetch(l mount.Layout, entries []Entry) ([]Entry, error) {
	root := cacheRoot(l, mount.FetchCache)
	if root == "" {
		return entries, nil
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return entries, nil
		}
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	for _, d := range ents {
		if _, _, ok := mount.FetchDigest(d.Name()); !ok || !d.Type().IsRegular() {
			continue
		}
		fi, err := d.Info()
		if err != nil {
			continue // removed meanwhile
		}
		entries = append(entries, Entry{Cache: mount.FetchCache, Path: d.Name(), Type: TypeFile,
			Mode: uint32(fi.Mode().Perm()), Size: fi.Size(), Layer: -1, st: statOf(fi, root)})
	}
	return entries, nil
}

// checkFetchEntry refuses an index entry of the fetch cache that is not a
// file named sha256:<hex> or sha512:<hex>: a restore renames these names
// into DIR itself, so nothing else may be one.
func checkFetchEntry(e *Entry) error {
	if e.Cache != mount.FetchCache {
		return nil
	}
	if _, _, ok := mount.FetchDigest(e.Path); !ok || e.Type != TypeFile {
		return fmt.Errorf("snapshot index: fetch cache entry %q (%s) is not a file named sha256:<hex> or sha512:<hex>", e.Path, e.Type)
	}
	return nil
}

// forgeUnverified makes a push skip verifyForPush. Tests set it to forge a
// snapshot that holds bad cache files under index digests that match them,
// so that only a pull's own verification can refuse it; nothing else can.
var forgeUnverified = false

// verifyForPush runs each pushed cache's verifier (mount.VerifyFiles) on
// the live files the push may pack anew and drops what it finds bad from
// entries: a push never publishes an npm content file whose bytes are not
// its integrity, a fetch file that is not its name, and so on. Each is
// logged and counted (ScanStats.Bad); the push goes on without it, as a
// cache miss. A file whose digest is its base entry's (a delta: the scan
// hashed every file) is not read again: the push that published it
// verified it, and a pull verifies it anyway, so a warm push of a large
// npm cache reads only what changed.
func verifyForPush(ctx context.Context, l mount.Layout, caches []mount.Cache, entries []Entry, base *Snapshot, st *ScanStats, log *slog.Logger) ([]Entry, error) {
	if forgeUnverified {
		return entries, nil
	}
	inBase := map[entryKey]string{}
	if base != nil {
		for _, e := range base.Index.Entries {
			if e.Type == TypeFile && !isGoCache(e.Cache) {
				inBase[e.id()] = e.SHA256
			}
		}
	}
	check := map[mount.Cache][]string{}
	for _, e := range entries {
		if e.Type == TypeFile && !isGoCache(e.Cache) && (e.SHA256 == "" || inBase[e.id()] != e.SHA256) {
			check[e.Cache] = append(check[e.Cache], e.Path)
		}
	}
	bad := map[entryKey]bool{}
	for _, c := range caches {
		if isGoCache(c) || len(check[c]) == 0 {
			continue
		}
		root := cacheRoot(l, c)
		_, probs, err := mount.VerifyFiles(ctx, c, root, check[c])
		if err != nil {
			return nil, fmt.Errorf("push: verify %s: %w", c, err)
		}
		for _, pr := range probs {
			rel, ok := relUnder(root, pr.Path)
			if !ok {
				continue
			}
			bad[entryKey{c, rel}] = true
			log.Warn("not pushing a bad cache entry", "cache", c, "path", pr.Path, "reason", pr.Reason)
		}
	}
	if len(bad) == 0 {
		return entries, nil
	}
	out := entries[:0]
	for _, e := range entries {
		if e.Type == TypeFile && bad[e.id()] {
			st.Bad++
			st.BadBytes += e.Size
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// relUnder returns p relative to root, slash-separated, and false when p is
// not below root.
func relUnder(root, p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, root+string(filepath.Separator))
	if !ok || rest == "" {
		return "", false
	}
	return filepath.ToSlash(rest), true
}

// listLocalFetch adds the fetch cache's local files (DIR's regular files
// named by mount.FetchDigest) to r.local.
func (r *restorer) listLocalFetch() error {
	es, err := walkFetch(r.l, nil)
	if err != nil {
		return err
	}
	for _, e := range es {
		r.local[e.id()] = localEntry{}
	}
	return nil
}

// stageFetchDrops marks, for a --replace restore, each local fetch file
// the snapshot lacks (staging/drop/fetch/N): the swap moves it aside, so
// the fetch cache is exactly the snapshot's. A merge keeps them.
func (r *restorer) stageFetchDrops() error {
	if !slices.Contains(r.caches, mount.FetchCache) {
		return nil
	}
	held := map[string]bool{}
	for i := range r.snap.Index.Entries {
		if e := &r.snap.Index.Entries[i]; e.Cache == mount.FetchCache {
			held[e.Path] = true
		}
	}
	drop := stagedDrop(r.l, mount.FetchCache)
	for k := range r.local {
		if k.c != mount.FetchCache || held[k.p] {
			continue
		}
		if err := os.MkdirAll(drop, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(drop, k.p), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("stage the removal of %s: %w", filepath.Join(r.l.Dir, k.p), err)
		}
		f.Close()
	}
	return nil
}

// verifyStaged runs each restored cache's verifier (mount.VerifyFiles) on
// the staged copies of the files the snapshot holds, other than Go's
// (whose modules download checks). One bad file refuses the whole pull
// with the caches untouched: the index's digests are the pusher's, and
// only the cache's own format (npm's integrity, a fetch file's name, a
// wheel's RECORD, maven's .sha1) says whether the bytes are what the tool
// will take them for. Checks that read other files (an npm index line, the
// size of its content) read them in the staged tree, local files a merge
// keeps included. A fetch file already in DIR is not staged: it is left as
// it is, as the snapshot's.
func (r *restorer) verifyStaged() error {
	held := map[mount.Cache][]string{}
	for i := range r.snap.Index.Entries {
		e := &r.snap.Index.Entries[i]
		if e.Type == TypeFile && !isGoCache(e.Cache) && !(e.Cache == mount.FetchCache && r.reuse[i] == linkIt) {
			held[e.Cache] = append(held[e.Cache], e.Path)
		}
	}
	for _, c := range r.caches {
		if isGoCache(c) || len(held[c]) == 0 {
			continue
		}
		root := stagedNew(r.l, c)
		_, probs, err := mount.VerifyFiles(r.ctx, c, root, held[c])
		if err != nil {
			return err
		}
		if len(probs) > 0 {
			rel, _ := relUnder(root, probs[0].Path)
			return verifyErrorf("%s: snapshot %s: %s %s: %s (%d bad files; refused: the caches are left as they were)",
				r.s, r.snap.Digest, c, rel, probs[0].Reason, len(probs))
		}
	}
	r.log.Debug("verified the staged caches", "elapsed", time.Since(r.t0))
	return nil
}
