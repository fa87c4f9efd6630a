package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestBeneathRefusesLinks: Beneath's lookups refuse a link at any element
// (the shard or the entry), report a file where a directory should be as
// ENOTDIR, read a regular file up to max, and neither open a FIFO for
// reading nor hang on it.
func TestBeneathRefusesLinks(t *testing.T) {
	base := t.TempDir()
	dir, outside := filepath.Join(base, "dir"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(dir, "ab"), filepath.Join(outside, "cd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "ab", "entry"), "0123456789")
	write(filepath.Join(outside, "cd", "entry"), "outside")
	write(filepath.Join(dir, "file"), "a file, not a shard")
	for link, target := range map[string]string{
		filepath.Join(dir, "cd"):          filepath.Join(outside, "cd"),          // a linked shard
		filepath.Join(dir, "ab", "alink"): filepath.Join(outside, "cd", "entry"), // a linked entry
		filepath.Join(dir, "ab", "rel"):   "entry",                               // a link inside
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "ab", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := openTestBeneath(t, dir)

	got, fi, err := b.ReadSmall("ab/entry", 4)
	if err != nil || string(got) != "0123" || !fi.Mode().IsRegular() || fi.Size() != 10 {
		t.Errorf("ReadSmall ab/entry 4: %q, %v, %v", got, fi, err)
	}
	if got, _, err := b.ReadSmall("ab/entry", 100); err != nil || string(got) != "0123456789" {
		t.Errorf("ReadSmall ab/entry 100: %q, %v", got, err)
	}
	if fi, err := b.Lstat("ab/entry"); err != nil || fi.Size() != 10 || fi.Name() != "entry" {
		t.Errorf("Lstat ab/entry: %v, %v", fi, err)
	}
	for _, name := range []string{"cd/entry", "ab/alink", "ab/rel", "cd"} {
		if _, _, err := b.ReadSmall(name, 100); !errors.Is(err, ErrLink) {
			t.Errorf("ReadSmall %s: %v, want ErrLink", name, err)
		}
	}
	if _, err := b.Lstat("cd/entry"); !errors.Is(err, ErrLink) {
		t.Errorf("Lstat through a linked shard: %v, want ErrLink", err)
	}
	// Lstat of a trailing link reports the link itself (or refuses it),
	// never its target.
	for _, name := range []string{"ab/alink", "ab/rel", "cd"} {
		if fi, err := b.Lstat(name); !errors.Is(err, ErrLink) && (err != nil || fi.Mode()&fs.ModeSymlink == 0) {
			t.Errorf("Lstat %s: %v, %v; want the link or ErrLink", name, fi, err)
		}
	}
	if _, _, err := b.ReadSmall("file/entry", 100); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("ReadSmall under a file: %v, want ENOTDIR", err)
	}
	if _, _, err := b.ReadSmall("ab/missing", 100); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadSmall of a missing entry: %v, want ErrNotExist", err)
	}
	if _, _, err := b.ReadSmall("../outside/cd/entry", 100); err == nil {
		t.Error("ReadSmall ../outside: no error")
	}
	got, fi, err = b.ReadSmall("ab/fifo", 100)
	if err != nil || got != nil || fi.Mode().IsRegular() {
		t.Errorf("ReadSmall of a FIFO: %q, %v, %v; want no content and not regular", got, fi, err)
	}
}

// TestBeneathSubdirMadeAgain: Lstat keeps a descriptor per directory it
// looked in; when that directory is replaced (removed and made again, or
// swapped for a link), an entry of the new one is found, and a link is
// still refused, never followed.
func TestBeneathSubdirMadeAgain(t *testing.T) {
	base := t.TempDir()
	dir, outside := filepath.Join(base, "dir"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(dir, "ab"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string) {
		t.Helper()
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "ab", "one"))
	write(filepath.Join(outside, "two"))
	b := openTestBeneath(t, dir)
	if _, err := b.Lstat("ab/one"); err != nil {
		t.Fatal(err)
	}
	// Removed and made again, with another entry.
	if err := os.RemoveAll(filepath.Join(dir, "ab")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "ab"), 0o755)
	write(filepath.Join(dir, "ab", "two"))
	if fi, err := b.Lstat("ab/two"); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("Lstat ab/two in the directory made again: %v, %v", fi, err)
	}
	if _, err := b.Lstat("ab/one"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat ab/one, removed: %v, want ErrNotExist", err)
	}
	// Swapped for a link to a directory that holds "two".
	if err := os.RemoveAll(filepath.Join(dir, "ab")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "ab")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lstat("ab/two"); !errors.Is(err, ErrLink) {
		t.Errorf("Lstat ab/two through a linked directory: %v, want ErrLink", err)
	}
}

// openTestBeneath opens dir for Beneath lookups, closed when the test
// ends; without openat2 the test is skipped: the os.Root path serves
// instead, and cacheprog's hostile tests run on it.
func openTestBeneath(t *testing.T, dir string) *Beneath {
	t.Helper()
	root, err := OpenRootNoFollow(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	b, err := OpenBeneath(root)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no openat2 here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
