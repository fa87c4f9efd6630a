package fsutil

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RemoveAll removes path like os.RemoveAll, making read-only directories
// under it writable when that is what stops it: extracted module trees are
// 0555 and their files 0444 (Go makes them read-only unless -modcacherw),
// which defeats a plain recursive remove for any user but root. A read-only
// parent is made writable for the removal and restored after. The error
// names the path.
func RemoveAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, err := d.Info(); err == nil && fi.Mode().Perm()&0o700 != 0o700 {
				_ = os.Chmod(p, fi.Mode().Perm()|0o700)
			}
		}
		return nil
	})
	// The parent may be read-only too (a tree inside a tree's parent dir).
	parent := filepath.Dir(path)
	if fi, err := os.Stat(parent); err == nil && fi.Mode().Perm()&0o200 == 0 {
		_ = os.Chmod(parent, fi.Mode().Perm()|0o700)
		defer os.Chmod(parent, fi.Mode().Perm())
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}
