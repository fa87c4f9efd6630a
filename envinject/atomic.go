package envinject

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/melcache/melcache/internal/fsutil"
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

// writeFileAtomic replaces path with data so that readers see the old or
// the new content, never a mix. It keeps the old file's owner and group when
// the caller may set them (inject -w must not change who owns a config), and
// syncs the file and its directory: a config rewritten in place is the user's
// own file, worth the two fsyncs.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return fsutil.WriteFile(path, data, fsutil.WriteOptions{
		Perm:       mode,
		KeepOwner:  true,
		Sync:       fsutil.SyncFileAndDir,
		TempPrefix: "." + filepath.Base(path) + ".melcache-",
	})
}
