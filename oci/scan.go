package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/melcache/melcache/mount"
	"golang.org/x/sync/errgroup"
)

// hashBufSize is the read buffer per hashing worker: large enough that a
// read costs little next to SHA-256, small enough for many workers.
const hashBufSize = 256 << 10

// excluded reports whether a cache-relative path is volatile and never
// packed (docs/format.md, "Excluded entries"). Extracted module trees are
// never filtered: a module may ship a Gopkg.lock or yarn.lock, and leaving
// it out would break the tree's .ziphash.
func excluded(c mount.Cache, rel string, isDir bool) bool {
	base := rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		base = rel[i+1:]
	}
	lockOrPartial := strings.HasSuffix(base, ".lock") || strings.HasSuffix(base, ".partial")
	switch c {
	case mount.GoCache:
		return rel == "trim.txt" || rel == "testexpire.txt" || rel == "fuzz" || lockOrPartial
	case mount.GoModCache:
		if rest, ok := strings.CutPrefix(rel, "cache/"); ok {
			// Download and VCS bookkeeping: lock files, partial downloads,
			// temporary files renamed into place when complete.
			return !isDir && (rest == "lock" || lockOrPartial || strings.Contains(base, ".tmp"))
		}
		// Go extracts a module into MODULE@VERSION.tmp-NNN and renames it
		// when complete: skip such a directory, nothing inside trees.
		if i := strings.IndexByte(rel, '@'); i >= 0 {
			comp := rel[i:]
			if j := strings.IndexByte(comp, '/'); j >= 0 {
				comp = comp[:j]
			}
			return strings.Contains(comp, ".tmp-")
		}
	}
	return false
}

// ScanStats counts what a scan left out.
type ScanStats struct {
	// Writing counts GOCACHE -d files whose content does not match their
	// name yet: a build is still writing them.
	Writing int `json:"skippedWriting"`
	// Other counts entries that are neither files nor directories.
	Other int `json:"skippedOther"`
	// BadName counts entries whose names no snapshot may hold (not UTF-8,
	// over-long, ...): every pull would refuse a snapshot holding them, so
	// one stray file would poison the tag for every builder. Go never
	// writes such names; they come from other tools.
	BadName int `json:"skippedBadName"`
}

// scanCaches walks the caches of l and returns their entries, sorted by
// (cache, path), hashed with jobs workers. With hashAll false nothing is
// hashed: a full push hashes while packing, so each byte is read once, and
// drops a -d file still being written from the index then.
func scanCaches(ctx context.Context, l mount.Layout, caches []mount.Cache, jobs int, hashAll bool) ([]Entry, ScanStats, error) {
	var st ScanStats
	var entries []Entry
	for _, c := range caches {
		root := l.CacheDir(c)
		if root == "" {
			continue
		}
		if err := l.CheckCacheRoot(c); err != nil {
			return nil, st, err
		}
		if _, err := os.Lstat(root); os.IsNotExist(err) {
			continue
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == root {
				return nil
			}
			rel := filepath.ToSlash(p[len(root)+1:])
			if checkPath(rel) != nil {
				st.BadName++
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if excluded(c, rel, d.IsDir()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				if os.IsNotExist(err) { // removed while we walk (trim)
					return nil
				}
				return err
			}
			switch {
			case fi.IsDir():
				entries = append(entries, Entry{Cache: c, Path: rel, Type: TypeDir, Mode: uint32(fi.Mode().Perm())})
			case fi.Mode().IsRegular():
				entries = append(entries, Entry{Cache: c, Path: rel, Type: TypeFile, Mode: uint32(fi.Mode().Perm()), Size: fi.Size(), Layer: -1, mtime: fi.ModTime().UnixNano()})
			default:
				st.Other++
			}
			return nil
		})
		if err != nil {
			return nil, st, fmt.Errorf("scan %s: %w", root, err)
		}
	}
	want := func(e *Entry) bool {
		return hashAll
	}
	if err := hashEntries(ctx, l, entries, jobs, want); err != nil {
		return nil, st, err
	}
	out := entries[:0]
	for _, e := range entries {
		if e.Type == TypeFile && e.SHA256 == "" && want(&e) { // vanished while hashing
			continue
		}
		if e.Type == TypeFile && e.Cache == mount.GoCache {
			if m := goCacheDataName.FindStringSubmatch(e.Path); m != nil && e.SHA256 != "" && m[1] != e.SHA256 {
				st.Writing++
				continue
			}
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, st, nil
}

// hashEntries fills SHA256 (and the size actually read) of the file entries
// want selects (all when want is nil).
func hashEntries(ctx context.Context, l mount.Layout, entries []Entry, jobs int, want func(*Entry) bool) error {
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i := range entries {
		e := &entries[i]
		if e.Type != TypeFile || want != nil && !want(e) {
			continue
		}
		if gctx.Err() != nil {
			break // a hash failed or ctx is done
		}
		g.Go(func() error {
			buf := hashBufPool.Get().(*[]byte)
			defer hashBufPool.Put(buf)
			sum, n, err := hashFile(filepath.Join(l.CacheDir(e.Cache), filepath.FromSlash(e.Path)), *buf)
			if os.IsNotExist(err) {
				return nil
			}
			if err != nil {
				return err
			}
			e.SHA256, e.Size = sum, n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err() // entries left unhashed are not "vanished"
}

func hashFile(p string, buf []byte) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, buf)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

var hashBufPool = sync.Pool{New: func() any { b := make([]byte, hashBufSize); return &b }}
