package mount_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/melcache/melcache/mount"
)

// TestDoctorDisk: free space below the caches' size fails, below twice
// warns, and a read-only filesystem fails, each with a fix.
func TestDoctorDisk(t *testing.T) {
	ctx := context.Background()
	l, err := mount.New(filepath.Join(t.TempDir(), "c"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(ctx, mount.PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	// The prepared layout holds Go's README in gocache: its size is the
	// caches' size.
	size := int64(len(mount.GoCacheREADME))
	for _, tc := range []struct {
		free  int64
		flags int64
		want  mount.CheckStatus
	}{
		{free: size - 1, want: mount.CheckFail},
		{free: 2*size - 1, want: mount.CheckWarn},
		{free: 2 * size, want: mount.CheckPass},
		{free: 1 << 40, flags: 1, want: mount.CheckFail},
	} {
		statfs := func(p string, st *syscall.Statfs_t) error {
			st.Bsize, st.Bavail, st.Flags = 1, uint64(tc.free), tc.flags
			return nil
		}
		var disk *mount.Check
		checks := l.Doctor(ctx, mount.DoctorOptions{Statfs: statfs})
		for i := range checks {
			if checks[i].Name == "disk" {
				disk = &checks[i]
			}
		}
		if disk == nil {
			t.Fatalf("no disk check in %+v", checks)
		}
		if disk.Status != tc.want || (tc.want != mount.CheckPass && disk.Fix == "") {
			t.Errorf("free %d flags %d: %+v, want %s with a fix", tc.free, tc.flags, *disk, tc.want)
		}
	}
}
