package fsutil

import (
	"os"
	"path/filepath"
	"time"
)

// Created is a directory a command made, remembered so that a command that
// then fails can take it back and leave the filesystem as it was.
type Created struct {
	Path        string
	parentMtime time.Time // the parent's modification time before Path was made
}

// BeforeCreate remembers path's parent's modification time; call it just
// before creating path.
func BeforeCreate(path string) Created {
	c := Created{Path: path}
	if fi, err := os.Stat(filepath.Dir(path)); err == nil {
		c.parentMtime = fi.ModTime()
	}
	return c
}

// Undo removes the created path (RemoveAll) and gives its parent back the
// modification time it had, as creating and removing an entry changes it.
func (c Created) Undo() error {
	if err := RemoveAll(c.Path); err != nil {
		return err
	}
	if !c.parentMtime.IsZero() {
		// A zero access time leaves it as it is.
		return os.Chtimes(filepath.Dir(c.Path), time.Time{}, c.parentMtime)
	}
	return nil
}
