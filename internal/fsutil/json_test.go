package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type record struct {
	Ref    string    `json:"ref"`
	Digest string    `json:"digest"`
	Time   time.Time `json:"time"`
	Files  int       `json:"files"`
}

func TestJSONRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".melcache")
	want := record{Ref: "oci:/x:main", Digest: "sha256:abc", Time: time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC), Files: 3}
	if err := WriteJSON(dir, "snapshots/ref-1.json", want, WriteOptions{CreateDirs: true, Sync: SyncFile}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON[record](dir, "snapshots/ref-1.json")
	if err != nil || got == nil || *got != want {
		t.Fatalf("ReadJSON = %+v, %v; want %+v", got, err, want)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "snapshots", "ref-1.json"))
	if !strings.HasSuffix(string(b), "}\n") || !strings.Contains(string(b), "\n  \"ref\"") {
		t.Errorf("state file is not indented JSON ending in a newline:\n%s", b)
	}
	// The In forms, on one open root.
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	want.Files = 4
	if err := WriteJSONIn(root, "snapshots/ref-1.json", want, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadJSONIn[record](root, "snapshots/ref-1.json"); err != nil || got == nil || *got != want {
		t.Fatalf("ReadJSONIn = %+v, %v; want %+v", got, err, want)
	}
}

// TestReadJSONMissing: nothing recorded yet is not an error, whether the
// file, its directory or the state dir itself is missing.
func TestReadJSONMissing(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ dir, name string }{
		{dir, "last-snapshot.json"},
		{dir, "snapshots/pull-1.json"},
		{filepath.Join(dir, "no-state"), "mark.json"},
	} {
		got, err := ReadJSON[record](c.dir, c.name)
		if got != nil || err != nil {
			t.Errorf("ReadJSON(%s, %s) = %v, %v; want nil, nil", c.dir, c.name, got, err)
		}
	}
}

func TestReadJSONBad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "journal.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON[record](dir, "journal.json")
	if err == nil || got != nil || !strings.Contains(err.Error(), filepath.Join(dir, "journal.json")) {
		t.Fatalf("ReadJSON of bad JSON = %v, %v; want an error naming the file", got, err)
	}
	// A name leading out of the directory is refused, not read.
	if _, err := ReadJSON[record](dir, "../x.json"); err == nil {
		t.Fatal("read ../x.json")
	}
}

// TestReadJSONRefusesLink: a link planted at a state file is not followed,
// even to a valid record inside the directory.
func TestReadJSONRefusesLink(t *testing.T) {
	dir := t.TempDir()
	if err := WriteJSON(dir, "real.json", record{Ref: "planted"}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.json", filepath.Join(dir, "last-snapshot.json")); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON[record](dir, "last-snapshot.json")
	if !errors.Is(err, ErrLink) || got != nil || !strings.Contains(err.Error(), filepath.Join(dir, "last-snapshot.json")) {
		t.Fatalf("ReadJSON through a link = %+v, %v; want ErrLink naming the file", got, err)
	}
	// A dangling link is refused too, not taken for "nothing recorded".
	if err := os.Symlink("nowhere.json", filepath.Join(dir, "mark.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSON[record](dir, "mark.json"); !errors.Is(err, ErrLink) {
		t.Fatalf("ReadJSON through a dangling link: %v; want ErrLink", err)
	}
}
