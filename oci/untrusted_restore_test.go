package oci

import (
	"archive/tar"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// Regression tests for issue 11, findings 4, 5, 9, 10 and 12b (restores
// into a cache dir whose content the build controls).

// buildUID is the build user of the setup (nobody).
const buildUID = 65534

// TestPullGivesFilesToCacheOwner (finding 4): DIR is root-owned, the caches
// belong to the build user; a root pull gives every restored file to the
// build user, who can then write the cache and refresh use marks.
func TestPullGivesFilesToCacheOwner(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	testenv.RequireRoot(t, "chown to the build user and switch to it")
	setpriv := testenv.RequireTool(t, "setpriv")
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	base := testenv.TempDir(t)
	for _, d := range []string{filepath.Dir(base), base} { // the build user must reach DIR
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dst, err := mount.New(filepath.Join(base, "dir"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range dst.Caches() {
		if err := os.MkdirAll(dst.CacheDir(c), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dst.CacheDir(c), buildUID, buildUID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Pull(ctx, dst, s, "k", Options{Replace: true}); err != nil {
		t.Fatal(err)
	}
	n := 0
	var someFile string
	for _, c := range dst.Caches() {
		filepath.WalkDir(dst.CacheDir(c), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Lstat(p)
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != buildUID || st.Gid != buildUID {
				t.Errorf("%s owned by %d:%d, want the cache owner %d", p, st.Uid, st.Gid, buildUID)
			}
			if c == mount.GoCache && strings.HasSuffix(p, "-d") {
				someFile = p
			}
			n++
			return nil
		})
	}
	if n < 20 || someFile == "" {
		t.Fatalf("only %d entries checked", n)
	}
	// A file an earlier root pull left to root is given back on the next
	// pull, which reuses its content.
	if err := os.Chown(someFile, 0, 0); err != nil {
		t.Fatal(err)
	}
	res, err := Pull(ctx, dst, s, "k", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.FilesWritten != 0 {
		t.Errorf("re-pull downloaded %d files, want all reused", res.FilesWritten)
	}
	if fi, err := os.Lstat(someFile); err != nil || fi.Sys().(*syscall.Stat_t).Uid != buildUID {
		t.Fatalf("%s after a re-pull: %v, want owner %d", someFile, err, buildUID)
	}
	// As the build user: a new entry in a shard dir, and a use-mark
	// refresh (an explicit mtime needs ownership, like Go's os.Chtimes).
	shard := filepath.Dir(someFile)
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", "sh", "-c",
		`echo x > "$1/new-entry-d" && touch -m -d @1700000000 "$2"`, "sh", shard, someFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the build user cannot write the restored cache: %v\n%s", err, out)
	}
}

// TestSymlinkedCacheRootRefused (finding 5): a cache root that is a link
// is refused by push, status and pull alike, and the files behind it stay.
func TestSymlinkedCacheRootRefused(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	elsewhere := filepath.Join(testenv.TempDir(t), "gc")
	writeT(t, filepath.Join(elsewhere, "aa", "user-file"), []byte("mine"), 0o644)
	if err := os.MkdirAll(dst.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := dst.CacheDir(mount.GoCache)
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: err = %v, want a refusal naming %s as a symbolic link", what, err, link)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", what, err)
		}
	}
	_, err := Push(ctx, dst, newMemStore(), "k", Options{})
	refused("push", err)
	_, err = dst.Status(ctx, mount.StatusOptions{})
	refused("status", err)
	for _, replace := range []bool{false, true} {
		_, err = Pull(ctx, dst, s, "k", Options{Replace: replace})
		refused("pull", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(elsewhere, "aa", "user-file")); err != nil || string(b) != "mine" {
		t.Fatalf("the file behind the link: %q %v", b, err)
	}
	if _, err := os.Stat(dst.CacheDir(mount.GoModCache)); !os.IsNotExist(err) {
		t.Fatalf("a refused pull restored the module cache: %v", err)
	}
}

// TestPullSetsSnapshotModeOnReusedFiles (finding 9): a local file whose
// content matches the snapshot's entry but whose mode does not gets the
// snapshot's mode, with --replace and in a merge, and the live file is not
// changed before the swap.
func TestPullSetsSnapshotModeOnReusedFiles(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(mount.GoCacheName, "README")
	body, err := os.ReadFile(filepath.Join(src.Dir, readme))
	if err != nil {
		t.Fatal(err)
	}
	for _, replace := range []bool{true, false} {
		dst := newLayout(t)
		local := filepath.Join(dst.Dir, readme)
		writeT(t, local, body, 0o600)
		res, err := Pull(ctx, dst, s, "k", Options{Replace: replace})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(local)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("replace=%v: reused %s has mode %o, the snapshot says 644", replace, readme, fi.Mode().Perm())
		}
		if res.FilesWritten != res.Files-1 {
			t.Errorf("replace=%v: %d of %d files downloaded, want all but the reused README", replace, res.FilesWritten, res.Files)
		}
	}
}

// TestPullPathNearPathMax (finding 10): a file whose final path fits
// PATH_MAX is restored although its staging path would not fit, and a
// restore that fails on an over-long path says so in a bounded message.
func TestPullPathNearPathMax(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	dst := newLayout(t)
	// Final path: DIR/gocache/<p>, 4090 bytes (PATH_MAX is 4096 with the
	// NUL); staging adds 22 bytes.
	const final = 4090
	n := final - len(dst.CacheDir(mount.GoCache)) - 1
	var p strings.Builder
	for p.Len() < n {
		seg := min(200, n-p.Len())
		if p.Len() > 0 {
			p.WriteByte('/')
			seg = min(200, n-p.Len())
		}
		if seg == 0 { // never end on a slash
			s := p.String()
			p.Reset()
			p.WriteString(s[:len(s)-1] + "x")
			break
		}
		p.WriteString(strings.Repeat("p", seg))
	}
	rel := p.String()
	srcDir := testenv.TempDir(t)
	if len(srcDir) > len(dst.Dir) {
		t.Fatalf("source dir %s longer than %s", srcDir, dst.Dir)
	}
	src, err := mount.New(srcDir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeT(t, filepath.Join(src.CacheDir(mount.GoCache), rel), []byte("deep"), 0o644)
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dst.CacheDir(mount.GoCache), rel)
	if len(want) != final {
		t.Fatalf("final path is %d bytes, want %d", len(want), final)
	}
	for _, replace := range []bool{false, true} { // the second pull reuses it
		if _, err := Pull(ctx, dst, s, "k", Options{Replace: replace}); err != nil {
			t.Fatalf("pull (replace=%v): %d-byte error: %.300s", replace, len(err.Error()), err)
		}
		if b, err := os.ReadFile(want); err != nil || string(b) != "deep" {
			t.Fatalf("restored file: %q %v", b, err)
		}
	}

	// A snapshot whose long-named file is corrupt is refused in a message
	// of bounded length (the name is 4 KB) and the cache is unchanged.
	var entries []Entry
	segs := strings.Split(rel, "/")
	for k := range segs[:len(segs)-1] {
		entries = append(entries, Entry{Cache: mount.GoCache, Path: strings.Join(segs[:k+1], "/"), Type: TypeDir, Mode: 0o755})
	}
	entries = append(entries, Entry{Cache: mount.GoCache, Path: rel, Type: TypeFile, Mode: 0o644, Size: 5, SHA256: sha([]byte("other"))})
	bad := newMemStore()
	craft(t, bad, entries, []member{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "gocache/" + rel, Mode: 0o644}, body: "hello"}}, nil)
	other := newLayout(t)
	keep := filepath.Join(other.CacheDir(mount.GoCache), "keep")
	writeT(t, keep, []byte("old"), 0o644)
	_, err = Pull(ctx, other, bad, "bad", Options{})
	if err == nil || !strings.Contains(err.Error(), "content sha256") {
		t.Fatalf("corrupt long-named file: err = %.300v", err)
	}
	if len(err.Error()) > 1024 || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%d-byte error, want one line of at most 1024: %.300s", len(err.Error()), err)
	}
	if ents, _ := os.ReadDir(other.CacheDir(mount.GoCache)); len(ents) != 1 || ents[0].Name() != "keep" {
		t.Fatalf("cache changed: %v", ents)
	}
}

// TestPullRefusesTrimTxtDir (finding 12b): a snapshot whose gocache/trim.txt
// is a directory is refused with one line naming the entry, the cache
// unchanged.
func TestPullRefusesTrimTxtDir(t *testing.T) {
	s := newMemStore()
	craft(t, s, []Entry{{Cache: mount.GoCache, Path: "trim.txt", Type: TypeDir, Mode: 0o755}}, nil, nil)
	dst := newLayout(t)
	old := filepath.Join(dst.CacheDir(mount.GoCache), "trim.txt")
	writeT(t, old, []byte("1700000000\n"), 0o644)
	_, err := Pull(context.Background(), dst, s, "bad", Options{})
	if err == nil || !strings.Contains(err.Error(), "gocache/trim.txt is a directory") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line naming gocache/trim.txt", err)
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != "1700000000\n" {
		t.Fatalf("trim.txt changed: %q %v", b, err)
	}
	if _, err := os.Stat(stagingDir(dst)); !os.IsNotExist(err) {
		t.Fatal("staging left behind")
	}
}

// TestMergePullOverLocalTrimTxtDir: a build that made gocache/trim.txt a
// directory does not make every merge pull fail; the pull writes Go's trim
// file there.
func TestMergePullOverLocalTrimTxtDir(t *testing.T) {
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	if _, err := Push(ctx, src, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	trim := filepath.Join(dst.CacheDir(mount.GoCache), "trim.txt")
	writeT(t, filepath.Join(trim, "x"), []byte("junk"), 0o644)
	if _, err := Pull(ctx, dst, s, "k", Options{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(trim); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("trim.txt after the pull: %v %v", fi, err)
	}
}
