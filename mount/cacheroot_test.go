package mount_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/mount"
)

// TestLinkedCacheRootRefused (issue 11, finding 5): status and doctor
// refuse a cache root that is a symbolic link, naming it, and leave it.
func TestLinkedCacheRootRefused(t *testing.T) {
	ctx := context.Background()
	l, err := mount.New(filepath.Join(t.TempDir(), "c"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(ctx, mount.PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	gc := l.CacheDir(mount.GoCache)
	elsewhere := filepath.Join(t.TempDir(), "gc")
	if err := os.Rename(gc, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, gc); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Status(ctx, mount.StatusOptions{}); !errors.Is(err, mount.ErrCacheRootLink) || !strings.Contains(err.Error(), gc) {
		t.Fatalf("status: err = %v, want a refusal naming %s", err, gc)
	}
	var dir *mount.Check
	for _, c := range l.Doctor(ctx, mount.DoctorOptions{}) {
		if c.Name == "dir" {
			dir = &c
			break
		}
	}
	if dir == nil || dir.Status != mount.CheckFail || !strings.Contains(dir.Message, "symbolic link") || dir.Fix == "" {
		t.Fatalf("doctor's dir check: %+v", dir)
	}
	if fi, err := os.Lstat(gc); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link changed: %v", err)
	}
}
