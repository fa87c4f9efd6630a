package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/melcache/melcache/mount"
	"golang.org/x/sys/unix"
)

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
	default:
		// melange's other caches: what their profile calls volatile
		// (npm's _logs, pip's selfcheck, maven's *.lastUpdated, ...).
		p, _ := mount.ProfileOf(c)
		return p.IsVolatile(rel)
	}
	return false
}

// ScanStats counts what a scan left out, and how it learnt what the files
// hold.
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
	// ModIndex and ModIndexBytes count the module-index entries left out
	// (GOCACHE outputs that begin "go index v2" and the action entries
	// naming them) and their bytes: docs/format.md, "Excluded entries".
	ModIndex      int   `json:"skippedModIndex"`
	ModIndexBytes int64 `json:"skippedModIndexBytes"`
	// Hashed counts files the scan read whole to hash them; StatCached
	// those whose digest a trusted stat cache record gave instead.
	Hashed     int `json:"hashed"`
	StatCached int `json:"statCached"`
	// Bad and BadBytes count the files of melange's other caches that
	// their verifier found bad (mount.VerifyTree: an npm content file
	// that is not its integrity, a fetch file that is not its name, ...)
	// and the push left out (verifyForPush).
	Bad      int   `json:"skippedBad,omitempty"`
	BadBytes int64 `json:"skippedBadBytes,omitempty"`
}

// scanOptions configure scanCaches.
type scanOptions struct {
	jobs int
	// hashAll hashes every file: a delta needs every digest up front. A
	// full push hashes while packing, so each byte is read once; the scan
	// then reads only GOCACHE action entries whole (175 bytes) and the
	// first bytes of outputs, to find the module-index entries.
	hashAll bool
	// stat is the last push's stat cache (nil: none).
	stat *statCache
	// since is when this push started reading files, recorded in the
	// stat cache the scan returns (racyWindow).
	since time.Time
}

// scanCaches walks the caches of l and returns their entries, sorted by
// (cache, path), and a stat cache of what it learnt (the caller adds what
// packing hashes, then saves it). Module-index entries and GOCACHE -d
// files still being written are left out and counted.
func scanCaches(ctx context.Context, l mount.Layout, caches []mount.Cache, o scanOptions) ([]Entry, ScanStats, *statCache, error) {
	w := walkCaches(l, caches)
	if w.err != nil {
		return nil, w.st, nil, w.err
	}
	return finishScan(ctx, caches, w, o)
}

// walked is the first half of a scan: the caches' entries as walked, with
// only their stat, and the counts of what the walk left out.
type walked struct {
	entries []Entry
	st      ScanStats
	err     error
}

// walkCaches walks the caches of l: no file is read. Push runs it while it
// reads the stat cache and resolves its base over the network (they are
// independent), then finishScan reads what the base rule needs read.
func walkCaches(l mount.Layout, caches []mount.Cache) walked {
	var w walked
	for _, c := range caches {
		if w.entries, w.err = walkCache(l, c, w.entries, &w.st); w.err != nil {
			return w
		}
	}
	return w
}

// finishScan is the rest of scanCaches on what walkCaches found.
func finishScan(ctx context.Context, caches []mount.Cache, w walked, o scanOptions) ([]Entry, ScanStats, *statCache, error) {
	st, entries := w.st, w.entries
	for i := range entries {
		if e := &entries[i]; e.Type == TypeFile {
			if r, ok := o.stat.lookup(e); ok {
				e.SHA256, e.GoTime, e.st.class, e.st.cached = hexSHA(r.sha), r.goTime, r.class, true
				e.st.out = hexSHA(r.out)
				st.StatCached++
			}
		}
	}
	if err := readEntries(ctx, entries, o.jobs, o.hashAll); err != nil {
		return nil, st, nil, err
	}
	markModIndex(entries)
	next := newStatCache(o.since)
	next.carry(o.stat, caches)
	out := entries[:0]
	for _, e := range entries {
		if e.Type == TypeFile {
			if e.st.gone {
				continue // removed while we read (trim)
			}
			next.record(&e)
			if e.st.read {
				st.Hashed++
			}
			if e.st.class == mount.OutputModIndex {
				st.ModIndex++
				st.ModIndexBytes += e.Size
				continue
			}
			if id, ok := goCacheDataID(e.Path); e.Cache == mount.GoCache && ok && e.SHA256 != "" && id != e.SHA256 {
				st.Writing++
				continue
			}
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, st, next, nil
}

// walkCache appends cache c's entries to entries, with what lstat says of
// each file.
func walkCache(l mount.Layout, c mount.Cache, entries []Entry, st *ScanStats) ([]Entry, error) {
	if c == mount.FetchCache {
		return walkFetch(l, entries)
	}
	root := l.CacheDir(c)
	if root == "" {
		return entries, nil
	}
	if err := l.CheckCacheRoot(c); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(root); os.IsNotExist(err) {
		return entries, nil
	}
	fd, err := syscall.Open(root, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	w := &dirWalker{c: c, root: root, entries: entries, st: st}
	if err := w.walk(fd, "", 0); err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	return w.entries, nil
}

// dirWalker walks a cache root as filepath.WalkDir would (each directory's
// entries in name order, a directory before its contents), but stats each
// entry relative to its directory's descriptor (fstatat): one path
// component for the kernel to resolve instead of the whole path from the
// root. Deep module trees made the walk, one lstat of a full path per
// entry, the largest part of an unchanged push.
type dirWalker struct {
	c       mount.Cache
	root    string
	entries []Entry
	st      *ScanStats
}

// maxHeldDirs bounds the directory descriptors a walk holds open: below
// it each level keeps its directory open for fstatat/openat; deeper, a
// directory is closed once its entries are stat'd and its subdirectories
// are opened by path, as filepath.WalkDir did, so a hostile deep tree
// (up to maxPathBytes/2 levels) cannot exhaust RLIMIT_NOFILE.
const maxHeldDirs = 64

// walk reads the directory open as fd (rel under the root; "" for the
// root, at depth 0) and closes it.
func (w *dirWalker) walk(fd int, rel string, depth int) error {
	f := os.NewFile(uintptr(fd), filepath.Join(w.root, rel))
	held := true
	defer func() {
		if held {
			f.Close()
		}
	}()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	sort.Strings(names)
	type stated struct {
		name string
		sys  unix.Stat_t
	}
	ents := make([]stated, 0, len(names))
	for _, name := range names {
		var sys unix.Stat_t
		if err := unix.Fstatat(fd, name, &sys, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, syscall.ENOENT) { // removed while we walk (trim)
				continue
			}
			return &fs.PathError{Op: "lstat", Path: filepath.Join(w.root, rel, name), Err: err}
		}
		ents = append(ents, stated{name, sys})
	}
	if depth >= maxHeldDirs {
		held = false
		f.Close()
	}
	for i := range ents {
		name, sys := ents[i].name, &ents[i].sys
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		isDir := sys.Mode&syscall.S_IFMT == syscall.S_IFDIR
		if checkPath(p) != nil {
			w.st.BadName++
			continue
		}
		if excluded(w.c, p, isDir) {
			continue
		}
		mode := uint32(sys.Mode & 0o777)
		switch {
		case isDir:
			w.entries = append(w.entries, Entry{Cache: w.c, Path: p, Type: TypeDir, Mode: mode})
			const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
			var sub int
			if held {
				sub, err = unix.Openat(fd, name, flags, 0)
			} else {
				sub, err = unix.Open(filepath.Join(w.root, p), flags, 0)
			}
			if err != nil {
				if errors.Is(err, syscall.ENOENT) {
					continue
				}
				return &fs.PathError{Op: "open", Path: filepath.Join(w.root, p), Err: err}
			}
			if err := w.walk(sub, p, depth+1); err != nil {
				return err
			}
		case sys.Mode&syscall.S_IFMT == syscall.S_IFREG:
			w.entries = append(w.entries, Entry{Cache: w.c, Path: p, Type: TypeFile, Mode: mode,
				Size: sys.Size, Layer: -1, st: fileStat{size: sys.Size, mtime: sys.Mtim.Nano(), ctime: sys.Ctim.Nano(), ino: sys.Ino, root: w.root}})
		default:
			w.st.Other++
		}
	}
	return nil
}

// statOf is the stat cache's view of a file in the cache rooted at root.
func statOf(fi fs.FileInfo, root string) fileStat {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return sysStat(sys, root)
	}
	return fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano(), root: root}
}

func sysStat(st *syscall.Stat_t, root string) fileStat {
	return fileStat{size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), ino: st.Ino, root: root}
}
