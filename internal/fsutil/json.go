package fsutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadJSON decodes the JSON state file name inside dir into a new T. A
// missing file (or dir) is not an error: it returns nil, nil (nothing
// recorded yet). name is resolved as WriteFileAt resolves it, and a link at
// name is refused (ErrLink), not followed. Errors name the file.
func ReadJSON[T any](dir, name string) (*T, error) {
	root, err := OpenRootNoFollow(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, name), err)
	}
	defer root.Close()
	return ReadJSONIn[T](root, name)
}

// ReadJSONIn is ReadJSON for a directory already opened as root.
func ReadJSONIn[T any](root *os.Root, name string) (*T, error) {
	display := filepath.Join(root.Name(), name)
	if err := CheckDirsIn(root, name); err != nil {
		return nil, fmt.Errorf("read %s: %w", display, err)
	}
	b, err := readNoFollow(root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", display, err)
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", display, err)
	}
	return v, nil
}

// ErrLink is returned for a state file that is a symbolic link: melcache
// never makes one, so one found there was planted.
var ErrLink = errors.New("is a symbolic link, which melcache never writes; not following it")

// readNoFollow reads the regular file name in root without following a
// link at name: Lstat refuses a link, and the file opened must be the one
// Lstat saw, so a link swapped in between is refused too.
func readNoFollow(root *os.Root, name string) ([]byte, error) {
	lfi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if lfi.Mode()&fs.ModeSymlink != 0 {
		return nil, ErrLink
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(lfi, fi) {
		return nil, ErrLink
	}
	return io.ReadAll(f)
}

// WriteJSON writes v, indented and ending in a newline (state files are read
// by people too), to the file name inside dir with WriteFileAt.
func WriteJSON(dir, name string, v any, o WriteOptions) error {
	b, err := marshal(v, filepath.Join(dir, name))
	if err != nil {
		return err
	}
	return WriteFileAt(dir, name, b, o)
}

// WriteJSONIn is WriteJSON for a directory already opened as root.
func WriteJSONIn(root *os.Root, name string, v any, o WriteOptions) error {
	b, err := marshal(v, filepath.Join(root.Name(), name))
	if err != nil {
		return err
	}
	return WriteFileIn(root, name, b, o)
}

func marshal(v any, display string) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", display, err)
	}
	return append(b, '\n'), nil
}
