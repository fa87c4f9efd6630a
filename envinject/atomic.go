package envinject

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// defaultFileMode is the mode of a file written where none existed.
const defaultFileMode = 0o644

// SaveEnvFile writes vars as a melange --env-file at path (WriteEnvFile's
// format), replacing it atomically. path must not be a directory. Errors
// start with path.
func SaveEnvFile(path string, vars []Var) error {
	var b bytes.Buffer
	if err := WriteEnvFile(&b, vars); err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s: is a directory; name the file to write", path)
	}
	if err := writeFileAtomic(path, b.Bytes(), defaultFileMode); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory and a rename, so readers see the old or the new content,
// never a mix. The new file gets mode's permission bits and, when the
// caller may set them, the old file's owner and group: inject -w must not
// change who owns a config.
//
// merge: replace with internal/fsutil's atomic write
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".melcache-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if mode == 0 {
		mode = defaultFileMode
	}
	if err := tmp.Chmod(mode.Perm() | mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		tmp.Close()
		return err
	}
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			_ = tmp.Chown(int(st.Uid), int(st.Gid)) // best effort: only root may give files away
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not all filesystems support it
		d.Close()
	}
	return nil
}
