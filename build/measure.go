package build

import (
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/melcache/melcache/mount"
)

// cacheSize is what the caches hold: module zips and bytes.
type cacheSize struct {
	zips  int
	bytes int64
}

// moduleZipDir is the part of a path under GOMODCACHE where module zips
// live (cache/download/MODULE/@v/VERSION.zip).
var moduleZipDir = string(filepath.Separator) + filepath.Join("cache", "download") + string(filepath.Separator)

// measureCaches walks gomodcache and gocache. Errors (a cache missing, a
// file vanishing under a concurrent trim) only make the figure smaller.
func measureCaches(l mount.Layout) cacheSize {
	var s cacheSize
	for _, c := range l.Caches() {
		root := l.CacheDir(c)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
				s.bytes += fi.Size()
			}
			if c == mount.GoModCache && strings.HasSuffix(p, ".zip") && strings.Contains(p, moduleZipDir) {
				s.zips++
			}
			return nil
		})
	}
	return s
}
