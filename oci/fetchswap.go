package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/melcache/melcache/mount"
)

// The fetch cache has no root to swap: its files are DIR's own entries
// (DIR/sha256:<hex>, DIR/sha512:<hex>). A restore makes "old or new, never a
// mix" hold for it file by file, with the staging tree as the plan and the
// restore journal's phases deciding which way recovery goes
// (docs/format.md, "Restore"; docs/reliability.md):
//
//   - staging/new/fetch/N holds each file the restore writes (downloaded,
//     or a copy of a local file that differs only in mode or owner); a
//     local file that is already the snapshot's is not staged, it stays;
//   - staging/drop/fetch/N (an empty marker) names a local fetch file a
//     --replace restore removes (the snapshot lacks it);
//   - swap, per name: a live DIR/N that is not already the staged file is
//     moved aside to staging/old/fetch/N, then the staged file is linked in
//     (a hard link, so staging/new keeps it: the live name sharing its
//     inode is the record that N was swapped in);
//   - undo, per name: a live DIR/N sharing the staged file's inode is
//     removed, and staging/old/fetch/N goes back.
//
// Both are idempotent, so recovery can run either again after a crash at
// any point. Every other entry of DIR is never renamed, linked or removed:
// only names mount.FetchDigest accepts are acted on, and a staged or live
// entry of such a name that is not a regular file stops the swap.

// stagedDrop is the directory of a restore's removal markers for cache c.
func stagedDrop(l mount.Layout, c mount.Cache) string {
	return filepath.Join(stagingDir(l), "drop", string(c))
}

// fetchSwapNames lists the names a fetch swap acts on: those staged in
// dirs (paths relative to root), each a fetch-cache name.
func fetchSwapNames(root *os.Root, dirs ...string) ([]string, error) {
	seen := map[string]bool{}
	for _, d := range dirs {
		f, err := root.Open(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if _, _, ok := mount.FetchDigest(n); !ok {
				return nil, fmt.Errorf("%s holds %q, which is not a fetch-cache name (planted in the staging area); not moving anything", filepath.Join(root.Name(), d), n)
			}
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// lstatFile returns the entry name in root, nil when there is none; an
// entry that is not a regular file is an error (a fetch swap moves files
// only).
func lstatFile(root *os.Root, name string) (fs.FileInfo, error) {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; a fetch-cache restore moves only files", filepath.Join(root.Name(), name))
	}
	return fi, nil
}

// fetchDirs are the fetch swap's staging directories relative to DIR.
type fetchDirs struct{ nw, old, drop string }

// check refuses a staging directory of the fetch swap that is there but is
// not a real directory: recovery reads what a crash left, and the build can
// write the state directory, so a link planted there must not redirect a
// rename.
func (d fetchDirs) check(root *os.Root) error {
	for _, p := range []string{d.nw, d.old, d.drop} {
		if _, err := lexists(root, p, true); err != nil {
			return err
		}
	}
	return nil
}

func fetchDirsOf(l mount.Layout) fetchDirs {
	rel := func(p string) string { r, _ := filepath.Rel(l.Dir, p); return r }
	return fetchDirs{nw: rel(stagedNew(l, mount.FetchCache)), old: rel(stagedOld(l, mount.FetchCache)),
		drop: rel(stagedDrop(l, mount.FetchCache))}
}

// swapInFetch swaps the staged fetch-cache files in (see above).
func swapInFetch(root *os.Root, l mount.Layout) error {
	d := fetchDirsOf(l)
	if err := d.check(root); err != nil {
		return fmt.Errorf("restore swap: %w", err)
	}
	if err := root.Mkdir(d.old, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("restore swap: %w", err)
	}
	names, err := fetchSwapNames(root, d.nw, d.drop)
	if err != nil {
		return fmt.Errorf("restore swap: %w", err)
	}
	for _, n := range names {
		nw, old := filepath.Join(d.nw, n), filepath.Join(d.old, n)
		newFi, err1 := lstatFile(root, nw)
		liveFi, err2 := lstatFile(root, n)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("restore swap: %w", err)
		}
		if liveFi != nil && (newFi == nil || !os.SameFile(liveFi, newFi)) {
			if _, err := root.Lstat(old); err == nil {
				return fmt.Errorf("restore swap: both %s and %s exist; remove %s to roll back", filepath.Join(l.Dir, n), filepath.Join(l.Dir, old), journalPath(l))
			}
			if err := swapRename(root, l, n, old); err != nil {
				return err
			}
			liveFi = nil
		}
		if newFi != nil && liveFi == nil {
			if err := root.Link(nw, n); err != nil {
				return fmt.Errorf("restore swap: link %s to %s: %w", filepath.Join(l.Dir, nw), filepath.Join(l.Dir, n), err)
			}
		}
	}
	return nil
}

// swapOutFetch undoes swapInFetch (see above).
func swapOutFetch(root *os.Root, l mount.Layout) error {
	d := fetchDirsOf(l)
	if err := d.check(root); err != nil {
		return fmt.Errorf("restore undo: %w", err)
	}
	names, err := fetchSwapNames(root, d.nw, d.old)
	if err != nil {
		return fmt.Errorf("restore undo: %w", err)
	}
	for i := len(names) - 1; i >= 0; i-- {
		n := names[i]
		nw, old := filepath.Join(d.nw, n), filepath.Join(d.old, n)
		newFi, err1 := lstatFile(root, nw)
		liveFi, err2 := lstatFile(root, n)
		oldFi, err3 := lstatFile(root, old)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("restore undo: %w", err)
		}
		if liveFi != nil && newFi != nil && os.SameFile(liveFi, newFi) {
			if err := root.Remove(n); err != nil {
				return fmt.Errorf("restore undo: remove %s: %w", filepath.Join(l.Dir, n), err)
			}
			liveFi = nil
		}
		if oldFi != nil && liveFi == nil {
			if err := root.Rename(old, n); err != nil {
				return fmt.Errorf("restore undo: move %s back to %s: %w", filepath.Join(l.Dir, old), filepath.Join(l.Dir, n), err)
			}
		}
	}
	return nil
}

// preflightFetch refuses, before the swap, a fetch swap that would meet a
// live entry of a staged name that is not a regular file (a directory or
// link the build made there: not the fetch cache's, and never moved).
func preflightFetch(l mount.Layout) error {
	root, err := swapDirs(l)
	if err != nil {
		return err
	}
	defer root.Close()
	d := fetchDirsOf(l)
	names, err := fetchSwapNames(root, d.nw, d.drop)
	if err != nil {
		return fmt.Errorf("pull into %s: %w", l.Dir, err)
	}
	for _, n := range names {
		if _, err := lstatFile(root, n); err != nil {
			return fmt.Errorf("pull into %s: %w", l.Dir, err)
		}
	}
	return nil
}
