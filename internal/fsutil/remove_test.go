package fsutil

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// helperEnv makes the test binary remove one tree instead of running the
// tests, so that a root test run can remove it as another user: root
// ignores 0555 directories, a build user does not.
const helperEnv = "MELCACHE_FSUTIL_TEST_REMOVE"

func TestMain(m *testing.M) {
	if p := os.Getenv(helperEnv); p != "" {
		if err := RemoveAll(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// readOnlyTree makes what Go extracts a module into: 0555 directories and
// 0444 files, inside a parent that is read-only too.
func readOnlyTree(t *testing.T, base string) (parent, tree string) {
	t.Helper()
	parent = filepath.Join(base, "golang.org", "x")
	tree = filepath.Join(parent, "mod@v0.1.0")
	for _, d := range []string{"", "zip", "zip/internal"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, d, "a.go"), []byte("package a\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"zip/internal", "zip", "", ".."} {
		if err := os.Chmod(filepath.Join(tree, d), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = os.Chmod(parent, 0o755) })
	return parent, tree
}

func TestRemoveAllReadOnlyTree(t *testing.T) {
	base, err := os.MkdirTemp("", "melcache-fsutil")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(base, 0o700); _ = RemoveAll(base) })
	parent, tree := readOnlyTree(t, base)
	if os.Geteuid() != 0 {
		if err := RemoveAll(tree); err != nil {
			t.Fatal(err)
		}
	} else {
		// As root the permissions would not matter: remove as uid 1000,
		// which owns the tree as the build user owns its caches.
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Fatalf("running as root, the test removes the tree as uid 1000 with setpriv: %v", err)
		}
		if err := filepath.Walk(base, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 1000, 1000)
		}); err != nil {
			t.Fatal(err)
		}
		os.Chmod(base, 0o755)
		exe, _ := os.Executable()
		bin := filepath.Join(base, "fsutil.test")
		copyFile(t, exe, bin)
		cmd := exec.Command(setpriv, "--reuid", "1000", "--regid", "1000", "--clear-groups", bin)
		cmd.Env = append(os.Environ(), helperEnv+"="+tree)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RemoveAll as uid 1000: %v\n%s", err, out)
		}
	}
	if _, err := os.Lstat(tree); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", tree, err)
	}
	// The read-only parent is read-only again.
	if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("parent %s: %v, %v; want it back at 0555", parent, fi.Mode(), err)
	}
	// A missing path is not an error, as with os.RemoveAll.
	if err := RemoveAll(filepath.Join(base, "gone")); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
