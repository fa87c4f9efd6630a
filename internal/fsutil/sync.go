package fsutil

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// SyncDir fsyncs the directory dir, which makes the creations, renames and
// removals of entries in it durable. A file system that cannot fsync a
// directory (EINVAL, or not supported) is not an error: there is nothing
// more to do there. The error names the directory.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	return syncDirFile(d, dir)
}

// syncDirIn is SyncDir for the directory dir ("." for the root itself)
// inside root.
func syncDirIn(root *os.Root, dir, display string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", display, err)
	}
	defer d.Close()
	return syncDirFile(d, display)
}

func syncDirFile(d *os.File, display string) error {
	err := d.Sync()
	if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return fmt.Errorf("sync %s: %w", display, err)
}
