package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Sync is how far WriteFile makes the new content durable before it
// returns. Whatever the level, a reader never sees a partial file: the new
// content is complete in its temporary file before the rename that makes it
// visible. With SyncFile or SyncFileAndDir a crash does not either.
type Sync uint8

const (
	// SyncFileAndDir fsyncs the file before the rename and the directory
	// after it: when WriteFile returns, the new content survives a crash.
	// Use it where later steps rely on the file being on disk (a journal
	// that must precede the renames it describes, an index that must
	// precede the next writer). It is the zero value: the safe default.
	SyncFileAndDir Sync = iota
	// SyncFile fsyncs the file before the rename but not the directory:
	// after a crash the file holds the old content or the new, never an
	// empty or torn one, but the rename may be lost. Use it for records
	// whose loss costs a little work later, not correctness, so that
	// writing them does not wait for a directory flush.
	SyncFile
	// SyncNone fsyncs nothing: readers still see old or new, but after a
	// crash the file may be empty or torn. Only for bulk copies whose
	// content is checked when used, where an fsync per file would cost
	// more than redoing the copy.
	SyncNone
)

// DefaultPerm is the permission WriteFile gives a file when Perm is 0.
const DefaultPerm fs.FileMode = 0o644

// dirPerm is the permission of directories CreateDirs makes: state dirs
// are readable by all, as the cache dir itself is.
const dirPerm = 0o755

// WriteOptions say how WriteFile writes.
type WriteOptions struct {
	// Perm is the new file's mode: its permission bits and any of
	// setuid, setgid and sticky. 0 means DefaultPerm. It is set with
	// fchmod, so the umask does not apply.
	Perm fs.FileMode
	// KeepOwner gives the new file the owner and group of the file it
	// replaces, when the caller may (root, or the owner keeping a group it
	// belongs to); otherwise the new file is the caller's, silently. An
	// edit in place must not change who owns a file.
	KeepOwner bool
	// Sync is the durability asked for; the zero value is the strongest.
	Sync Sync
	// CreateDirs creates the missing directories up to the file (0755).
	// Without it a missing directory is an error, so that a wrong path is
	// not silently created.
	CreateDirs bool
	// ModTime, when set, is the new file's modification (and access)
	// time, set before the rename: a copy keeps its source's mtime.
	ModTime time.Time
	// TempPrefix starts the temporary file's name; a random suffix
	// follows. "" means "." + the file's name + ".tmp-". Callers that
	// recognise their own debris after a crash set their own.
	TempPrefix string
}

// WriteFile replaces the file at path with data, atomically: see
// WriteFileAt, which it calls with path's directory and base name.
//
// Unlike WriteFileAt, it follows a link at path's directory: path is one a
// user gave (an OCI layout, a cache root), not a state directory.
func WriteFile(path string, data []byte, o WriteOptions) error {
	root, err := openRoot(filepath.Dir(path), filepath.Base(path), o, true)
	if err != nil {
		return err
	}
	defer root.Close()
	return WriteFileIn(root, filepath.Base(path), data, o)
}

// WriteFileFunc is WriteFile for content that write streams to w (the
// temporary file), such as a download checked on the way. When write
// returns an error the temporary file is removed and path keeps its old
// content (or stays missing); the error is returned, naming path.
func WriteFileFunc(path string, write func(w io.Writer) error, o WriteOptions) error {
	dir, name := filepath.Dir(path), filepath.Base(path)
	root, err := openRoot(dir, name, o, true)
	if err != nil {
		return err
	}
	defer root.Close()
	return writeIn(root, name, write, o)
}

// WriteFileAt replaces the file name inside dir with data, atomically: data
// goes to a temporary file next to it, which is fsynced, given o.Perm (and
// the old owner with o.KeepOwner) and renamed over name; then dir is
// fsynced when o.Sync asks for it. name may have several elements
// ("snapshots/x.json"); it is resolved with os.Root, so it never leads out
// of dir and a link planted at name is replaced, not written through. A
// link at dir itself, or at a directory inside name, is refused (ErrLink):
// dir is a state directory a less trusted user may write to.
// Errors name the file.
func WriteFileAt(dir, name string, data []byte, o WriteOptions) error {
	root, err := openRoot(dir, name, o, false)
	if err != nil {
		return err
	}
	defer root.Close()
	return WriteFileIn(root, name, data, o)
}

// openRoot opens dir for writing name into it, creating it first when o
// asks for that. Unless follow, a link at dir is refused, not followed.
func openRoot(dir, name string, o WriteOptions, follow bool) (*os.Root, error) {
	if follow {
		if o.CreateDirs {
			if err := os.MkdirAll(dir, dirPerm); err != nil {
				return nil, fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
			}
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
		}
		return root, nil
	}
	if o.CreateDirs {
		// A link at dir is refused below, not created through.
		if fi, err := os.Lstat(dir); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			if err := os.MkdirAll(dir, dirPerm); err != nil {
				return nil, fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
			}
		}
	}
	root, err := OpenRootNoFollow(dir)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return root, nil
}

// maxTempTries bounds the names tried for the temporary file: a clash of
// random 63-bit suffixes means something is wrong, not unlucky.
const maxTempTries = 100

// WriteFileIn is WriteFileAt for a directory already opened as root.
func WriteFileIn(root *os.Root, name string, data []byte, o WriteOptions) error {
	return writeIn(root, name, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, o)
}

// WriteFileFuncIn is WriteFileFunc for a directory already opened as
// root: name is resolved inside root, links at its directories are refused
// and a link at name is replaced, never written through. write receives the
// temporary file (an *os.File).
func WriteFileFuncIn(root *os.Root, name string, write func(w io.Writer) error, o WriteOptions) error {
	return writeIn(root, name, write, o)
}

// writeIn is the one atomic write: every exported form comes here.
func writeIn(root *os.Root, name string, write func(io.Writer) error, o WriteOptions) error {
	display := filepath.Join(root.Name(), name)
	if err := writeInRoot(root, name, write, o, display); err != nil {
		return fmt.Errorf("write %s: %w", display, err)
	}
	return nil
}

func writeInRoot(root *os.Root, name string, write func(io.Writer) error, o WriteOptions, display string) error {
	dir, base := filepath.Split(filepath.Clean(name))
	if dir == "" {
		dir = "."
	}
	// Directories inside root are never links: os.Root would follow one
	// that stays inside it.
	if err := CheckDirsIn(root, name); err != nil {
		return err
	}
	if o.CreateDirs {
		if err := root.MkdirAll(dir, dirPerm); err != nil {
			return err
		}
		if err := CheckDirsIn(root, name); err != nil {
			return err
		}
	}
	prefix := o.TempPrefix
	if prefix == "" {
		prefix = "." + base + ".tmp-"
	}
	var f *os.File
	var tmp string
	for i := 0; ; i++ {
		tmp = filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64()>>1, 36))
		var err error
		// O_EXCL: never open an existing file or a planted link.
		f, err = root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i == maxTempTries {
			return err
		}
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if o.KeepOwner {
		if fi, err := root.Lstat(name); err == nil {
			if uid, gid, ok := OwnerOf(fi); ok {
				// Best effort: only root may give a file away. Before
				// the chmod, as a chown may clear setuid and setgid.
				_ = f.Chown(uid, gid)
			}
		}
	}
	perm := o.Perm
	if perm == 0 {
		perm = DefaultPerm
	}
	if err := f.Chmod(perm & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		return err
	}
	if o.Sync != SyncNone {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !o.ModTime.IsZero() {
		// By name, as a File has no Chtimes; tmp was created with
		// O_EXCL by this call and lives in a directory root confines.
		if err := root.Chtimes(tmp, o.ModTime, o.ModTime); err != nil {
			return err
		}
	}
	if err := root.Rename(tmp, name); err != nil {
		return err
	}
	renamed = true
	if o.Sync == SyncFileAndDir {
		return syncDirIn(root, dir, filepath.Dir(display))
	}
	return nil
}
