package mount

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// cacheFile is one regular file of a cache other than Go's.
type cacheFile struct {
	// path is the host path; rel the slash path relative to the cache root
	// (for the fetch cache, the file's name in DIR).
	path, rel string
	size      int64
	mtime     time.Time
}

// Fetch-cache names: the fetch pipeline looks for DIR/<algo>:<hex>, with
// the hex of its expected-sha256 or expected-sha512 input.
var fetchAlgos = map[string]int{"sha256": 64, "sha512": 128}

// FetchDigest parses a fetch-cache file name, "sha256:<64 hex>" or
// "sha512:<128 hex>" in lowercase as melange's configs write them. Any
// other name is not the fetch cache's, and melcache leaves it alone.
func FetchDigest(name string) (algo, hexsum string, ok bool) {
	algo, hexsum, ok = strings.Cut(name, ":")
	if n, known := fetchAlgos[algo]; !ok || !known || !isHex(hexsum, n) {
		return "", "", false
	}
	return algo, hexsum, true
}

// CachePresent reports whether cache c is in l: its root is a directory,
// or, for the fetch cache, DIR holds at least one fetch-cache file. A root
// that is a link is refused (CheckCacheRoot).
func (l Layout) CachePresent(c Cache) (bool, error) {
	if c == FetchCache {
		fs, err := l.fetchFiles()
		return len(fs) > 0, err
	}
	if err := l.CheckCacheRoot(c); err != nil {
		return false, err
	}
	p := l.CacheDir(c)
	if p == "" {
		return false, nil
	}
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir(), nil
}

// cacheFiles lists the regular files of c, a cache other than Go's,
// sorted by path. Links and other special files are not listed: melcache
// never follows or reads them. A missing cache has no files.
func (l Layout) cacheFiles(ctx context.Context, c Cache) ([]cacheFile, error) {
	if c == FetchCache {
		if l.Mode == Recipe {
			return nil, nil // DIR is a module cache
		}
		return listTree(ctx, c, l.Dir)
	}
	if err := l.CheckCacheRoot(c); err != nil {
		return nil, err
	}
	if root := l.CacheDir(c); root != "" {
		return listTree(ctx, c, root)
	}
	return nil, nil
}

// fetchFiles lists the fetch cache: DIR's regular files named by
// FetchDigest.
func (l Layout) fetchFiles() ([]cacheFile, error) {
	return l.cacheFiles(context.Background(), FetchCache)
}

// listTree lists the regular files of cache c laid out under root (a cache
// root, or a staging copy of one): every file below root, or for the fetch
// cache root's own entries named by FetchDigest. Links and special files
// are not listed; a missing root has none.
func listTree(ctx context.Context, c Cache, root string) ([]cacheFile, error) {
	if c == FetchCache {
		return listFetch(root)
	}
	var out []cacheFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, cacheFile{path: p, rel: filepath.ToSlash(rel), size: fi.Size(), mtime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", root, err)
	}
	return out, nil
}

func listFetch(dir string) ([]cacheFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("fetch cache in %s: %w", dir, err)
	}
	var out []cacheFile
	for _, e := range ents {
		if _, _, ok := FetchDigest(e.Name()); !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, cacheFile{path: filepath.Join(dir, e.Name()), rel: e.Name(), size: fi.Size(), mtime: fi.ModTime()})
	}
	return out, nil
}

// openNoFollow opens a file the build may have written for reading, not
// following a link planted at its last element.
func openNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}

// digestFile returns the digest h computes over the file at p.
func digestFile(p string, h hash.Hash) ([]byte, error) {
	f, err := openNoFollow(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return h.Sum(nil), nil
}

// checkCaches fails when l cannot hold one of cs (a recipe layout holds
// only the module cache).
func (l Layout) checkCaches(cs []Cache) error {
	all := l.AllCaches()
	for _, c := range cs {
		ok := false
		for _, a := range all {
			ok = ok || a == c
		}
		if !ok {
			return fmt.Errorf("cache %s: a %s layout holds only %s", c, l.Mode, joinCaches(all))
		}
	}
	return nil
}

// dirsOf lists the host root directories of cs (the fetch cache has none).
func (l Layout) dirsOf(cs []Cache) []string {
	var out []string
	for _, c := range cs {
		if p := l.CacheDir(c); p != "" {
			out = append(out, p)
		}
	}
	return out
}
