package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestNoFollowRefusesLinks: each no-follow helper refuses a link planted
// where a state file or directory should be, and the link's target is
// neither created nor changed.
func TestNoFollowRefusesLinks(t *testing.T) {
	base := t.TempDir()
	state := filepath.Join(base, "state")
	victim := filepath.Join(base, "victim")
	for _, d := range []string{state, victim} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keep := filepath.Join(victim, "keep")
	if err := os.WriteFile(keep, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := OpenRootNoFollow(state)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	// A link at the file: O_CREATE neither creates nor truncates through it.
	os.Symlink(keep, filepath.Join(state, "marker"))
	os.Symlink(filepath.Join(victim, "missing"), filepath.Join(state, "lock"))
	for _, name := range []string{"marker", "lock"} {
		f, err := OpenFileNoFollow(root, name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if !errors.Is(err, ErrLink) {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenFileNoFollow(%s) through a link: %v; want ErrLink", name, err)
		}
	}
	// With O_EXCL the existing link is an ErrExist, as the caller asked.
	if _, err := OpenFileNoFollow(root, "marker", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, os.ErrExist) {
		t.Errorf("O_EXCL over a link: %v; want ErrExist", err)
	}
	// A link at a directory inside root, even one staying inside it.
	os.Mkdir(filepath.Join(state, "real"), 0o755)
	os.Symlink("real", filepath.Join(state, "snapshots"))
	if err := CheckDirsIn(root, "snapshots/x.json"); !errors.Is(err, ErrLink) {
		t.Errorf("CheckDirsIn through a linked dir: %v; want ErrLink", err)
	}
	if err := WriteFileAt(state, "snapshots/x.json", []byte("{}"), WriteOptions{CreateDirs: true}); !errors.Is(err, ErrLink) {
		t.Errorf("WriteFileAt through a linked dir: %v; want ErrLink", err)
	}
	if _, err := MkdirIn(root, "snapshots", 0o755); !errors.Is(err, ErrLink) {
		t.Errorf("MkdirIn over a link: %v; want ErrLink", err)
	}
	// A link at the directory itself.
	linked := filepath.Join(base, "linked-state")
	os.Symlink(victim, linked)
	if _, err := OpenRootNoFollow(linked); !errors.Is(err, ErrLink) {
		t.Errorf("OpenRootNoFollow of a link: %v; want ErrLink", err)
	}
	if err := WriteFileAt(linked, "x.json", []byte("{}"), WriteOptions{CreateDirs: true}); !errors.Is(err, ErrLink) {
		t.Errorf("WriteFileAt into a linked dir: %v; want ErrLink", err)
	}
	if got, err := ReadJSON[record](linked, "keep"); got != nil || !errors.Is(err, ErrLink) {
		t.Errorf("ReadJSON from a linked dir: %v, %v; want ErrLink", got, err)
	}

	ents, _ := os.ReadDir(victim)
	if b, _ := os.ReadFile(keep); string(b) != "keep\n" || len(ents) != 1 {
		t.Fatalf("the links' targets changed: keep=%q, %d entries in %s", b, len(ents), victim)
	}
	// A regular file is opened, and created when missing.
	for _, name := range []string{"new", "new"} {
		f, err := OpenFileNoFollow(root, name, os.O_RDONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatalf("OpenFileNoFollow(%s): %v", name, err)
		}
		f.Close()
	}
}
