package mount

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
)

// treeState describes every entry under root (path, type, mode, owner,
// size, mtime and a content hash), so a test can assert that nothing
// changed, byte for byte and attribute for attribute.
func treeState(t testing.TB, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v uid=%d gid=%d size=%d mtime=%d", fi.Mode(), st.Uid, st.Gid, fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " sha256=" + hex.EncodeToString(sum[:])
		}
		if fi.IsDir() {
			desc = fmt.Sprintf("%v uid=%d gid=%d", fi.Mode(), st.Uid, st.Gid) // dir sizes/mtimes follow their content
		}
		rel, _ := filepath.Rel(root, p)
		m[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diffStates lists the differences between two treeStates.
func diffStates(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, "changed "+k+": "+v+" -> "+w)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// putEntry writes a synthetic but well-formed GOCACHE entry pair: an output
// named by the SHA-256 of content and an action entry pointing at it, both
// with mtime used; the action entry says it was written at written.
func putEntry(t testing.TB, gc string, content string, used, written time.Time) (action, output string) {
	t.Helper()
	out := sha256.Sum256([]byte(content))
	id := sha256.Sum256([]byte("action:" + content))
	output = filepath.Join(gc, fmt.Sprintf("%02x", out[0]), fmt.Sprintf("%x-d", out))
	action = filepath.Join(gc, fmt.Sprintf("%02x", id[0]), fmt.Sprintf("%x-a", id))
	line := fmt.Sprintf("v1 %x %x %20d %20d\n", id, out, len(content), written.UnixNano())
	for p, b := range map[string]string{output: content, action: line} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, used, used); err != nil {
			t.Fatal(err)
		}
	}
	return action, output
}

// realCache copies the shared real-build fixture (testenv.RealCache: `go
// build -trimpath` of a small cobra program into fresh caches) into a new
// cache directory laid out as melcache's split layout, and returns the
// layout.
func realCache(t testing.TB) Layout {
	t.Helper()
	fix := testenv.RealCache(t)
	dir := filepath.Join(testenv.TempDir(t), "mc")
	testenv.CopyTree(t, fix, dir)
	l, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// goEnv is the environment of a go command using l's caches.
func goEnv(l Layout, extra ...string) testenv.GoEnv {
	return testenv.GoEnv{ModCache: l.CacheDir(GoModCache), Cache: l.CacheDir(GoCache), Extra: extra}
}

// prunexDir copies testdata/prunex, a tiny program using a third-party
// module, into a fresh directory (builds may write go.sum: never into the
// source tree).
func prunexDir(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(testenv.TempDir(t), "prunex")
	testenv.CopyTree(t, "testdata/prunex", dst)
	return dst
}

// findFile returns the first path under root (walk order) for which ok is
// true.
func findFile(t testing.TB, root string, ok func(p string, fi fs.FileInfo) bool) string {
	t.Helper()
	var found string
	_ = filepath.Walk(root, func(p string, fi fs.FileInfo, err error) error {
		if err == nil && found == "" && ok(p, fi) {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no matching file under %s", root)
	}
	return found
}

// flipByte inverts one byte in the middle of file p, keeping its size,
// mode and mtime (the worst case: Go checks only sizes).
func flipByte(t testing.TB, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(p, fi.Mode().Perm())
	_ = os.Chtimes(p, fi.ModTime(), fi.ModTime())
}

func hasSuffixAny(s string, suffixes ...string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}
