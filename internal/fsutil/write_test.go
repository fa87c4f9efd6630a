package fsutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// onlyFile fails unless dir holds exactly the one entry name: no temporary
// file is left behind.
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%s holds %v, want only %s", dir, names, name)
	}
}

func TestWriteFileReplaces(t *testing.T) {
	for _, s := range []Sync{SyncFileAndDir, SyncFile} {
		dir := t.TempDir()
		p := filepath.Join(dir, "state.json")
		if err := os.WriteFile(p, []byte("old content, longer than the new"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(p, []byte("new"), WriteOptions{Perm: 0o640, Sync: s}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != "new" {
			t.Fatalf("sync %d: content %q, want %q", s, b, "new")
		}
		if fi, _ := os.Stat(p); fi.Mode() != 0o640 {
			t.Errorf("sync %d: mode %v, want 0640", s, fi.Mode())
		}
		onlyFile(t, dir, "state.json")
	}
}

func TestWriteFileDefaultPermIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(p, []byte("x"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode() != DefaultPerm {
		t.Errorf("mode %v, want %v", fi.Mode(), DefaultPerm)
	}
}

// fsizeChildEnv names the file a child test process writes under a small
// RLIMIT_FSIZE. The limit is per process, so it is set in a child: set in
// the test process itself, it also stops the test framework's own log
// writes (go test's testlog.txt), which fails the package at random.
const fsizeChildEnv = "FSUTIL_TEST_FSIZE_CHILD"

// TestWriteFileFailureKeepsOld: a write that fails part way (the file-size
// limit stops it after some bytes) leaves the original byte-identical and
// no temporary file.
func TestWriteFileFailureKeepsOld(t *testing.T) {
	if p := os.Getenv(fsizeChildEnv); p != "" {
		fsizeChild(p)
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "index.json")
	orig := bytes.Repeat([]byte("original "), 100)
	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFileFailureKeepsOld$")
	cmd.Env = append(os.Environ(), fsizeChildEnv+"="+p)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, orig) {
		t.Fatalf("original changed: %d bytes, want %d", len(b), len(orig))
	}
	onlyFile(t, dir, "index.json")
}

// fsizeChild runs in the child process: Go ignores SIGXFSZ, so a write
// past RLIMIT_FSIZE fails with EFBIG after writing what fits, a real
// partial write. It exits 1 unless WriteFile reports EFBIG naming p.
func fsizeChild(p string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	lim.Cur = 4096
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	err := WriteFile(p, bytes.Repeat([]byte("n"), 1<<20), WriteOptions{})
	if !errors.Is(err, syscall.EFBIG) || !strings.Contains(err.Error(), p) {
		fmt.Printf("a write past the file-size limit: %v; want EFBIG naming %s\n", err, p)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestWriteFileMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	err := WriteFileAt(dir, "snapshots/a.json", []byte("{}"), WriteOptions{})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "snapshots/a.json")) {
		t.Fatalf("write into a missing dir: %v; want a not-exist error naming the file", err)
	}
	if err := WriteFileAt(dir, "snapshots/a.json", []byte("{}"), WriteOptions{CreateDirs: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "snapshots", "a.json")); string(b) != "{}" {
		t.Fatalf("content %q", b)
	}
}

// TestWriteFileReplacesPlantedLink: a link planted at the name is replaced
// by the new file; its target, outside the directory, is untouched.
func TestWriteFileReplacesPlantedLink(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "victim")
	if err := os.WriteFile(outside, []byte("victim"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "journal.json")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAt(dir, "journal.json", []byte("new"), WriteOptions{KeepOwner: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "victim" {
		t.Fatalf("wrote through the link: target holds %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, "journal.json"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("journal.json is %v, %v; want a regular file", fi, err)
	}
	// A name that leads out of the directory is refused.
	if err := WriteFileAt(dir, "../victim", []byte("x"), WriteOptions{}); err == nil {
		t.Fatal("wrote ../victim")
	}
	if b, _ := os.ReadFile(outside); string(b) != "victim" {
		t.Fatalf("target holds %q", b)
	}
}

func TestWriteFileKeepOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		// Only root may give a file to another user; the caller's own
		// files are what a non-root run can check.
		t.Log("not root: checking that the new file is the caller's")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "melange.yaml")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	type owner struct{ uid, gid int }
	ownerOf := func(fi os.FileInfo) owner {
		uid, gid, ok := OwnerOf(fi)
		if !ok {
			t.Fatalf("no owner in %v", fi.Sys())
		}
		return owner{uid, gid}
	}
	me := owner{os.Getuid(), os.Getgid()}
	want := me
	if os.Geteuid() == 0 {
		want = owner{1234, 5678}
		if err := os.Lchown(p, want.uid, want.gid); err != nil {
			t.Fatal(err)
		}
	}
	// The mode is set after the chown that keeps the owner.
	if err := WriteFile(p, []byte("new"), WriteOptions{Perm: 0o750, KeepOwner: true}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := ownerOf(fi); got != want {
		t.Errorf("owner %v, want %v kept", got, want)
	}
	if want := os.FileMode(0o750); fi.Mode() != want {
		t.Errorf("mode %v, want %v", fi.Mode(), want)
	}
	// Without KeepOwner the file is the writer's.
	if err := WriteFile(p, []byte("newer"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(p)
	if got := ownerOf(fi); got != me {
		t.Errorf("owner %v without KeepOwner, want the writer %v", got, me)
	}
}

func TestWriteFileTempPrefix(t *testing.T) {
	dir := t.TempDir()
	// A directory in the way makes the rename fail after the temporary
	// file is written, which must then be gone too.
	if err := os.Mkdir(filepath.Join(dir, "index.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json", "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "index.json"), []byte("{}"), WriteOptions{TempPrefix: ".tmp-index-"}); err == nil {
		t.Fatal("renamed a file over a non-empty directory")
	}
	onlyFile(t, dir, "index.json")
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	if err := SyncDir(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("SyncDir(missing) = %v; want an error naming %s", err, missing)
	}
}

// TestWriteFileFuncAbandons: when the producer fails part way (a download
// whose digest does not match), the target keeps its old content, a missing
// target stays missing, and no temporary file is left.
func TestWriteFileFuncAbandons(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "blob")
	if err := os.WriteFile(p, []byte("old blob"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("content mismatch")
	fail := func(w io.Writer) error {
		if _, err := w.Write([]byte("half of a new blob")); err != nil {
			return err
		}
		return bad
	}
	if err := WriteFileFunc(p, fail, WriteOptions{TempPrefix: ".tmp-blob-"}); !errors.Is(err, bad) || !strings.Contains(err.Error(), p) {
		t.Fatalf("WriteFileFunc = %v; want the producer's error, naming %s", err, p)
	}
	if b, _ := os.ReadFile(p); string(b) != "old blob" {
		t.Fatalf("content %q after a failed write", b)
	}
	missing := filepath.Join(dir, "new-blob")
	if err := WriteFileFunc(missing, fail, WriteOptions{}); !errors.Is(err, bad) {
		t.Fatal(err)
	}
	onlyFile(t, dir, "blob")
	ok := func(w io.Writer) error { _, err := io.WriteString(w, "new blob"); return err }
	if err := WriteFileFunc(p, ok, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new blob" {
		t.Fatalf("content %q", b)
	}
}

// TestWriteFileModTime: a copy keeps its source's mtime, at every
// durability.
func TestWriteFileModTime(t *testing.T) {
	mt := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	for _, s := range []Sync{SyncFileAndDir, SyncFile, SyncNone} {
		p := filepath.Join(t.TempDir(), "v1.2.3.zip")
		if err := WriteFile(p, []byte("zip"), WriteOptions{Sync: s, ModTime: mt, Perm: 0o444}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.ModTime().Equal(mt) || fi.Mode() != 0o444 {
			t.Errorf("sync %d: %v, %v; want mtime %v and mode 0444", s, fi.ModTime(), err, mt)
		}
		if b, _ := os.ReadFile(p); string(b) != "zip" {
			t.Errorf("sync %d: content %q", s, b)
		}
	}
}
