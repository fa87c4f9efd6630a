package mount

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// helperEnv makes the test binary run one mount operation instead of the
// tests, so a test can run it as another user (root ignores 0555 dirs, a
// build user does not).
const helperEnv = "MELCACHE_MOUNT_TEST_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		if err := runHelper(h); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(spec string) error {
	op, dir, _ := strings.Cut(spec, ":")
	l, err := New(dir, Options{})
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch op {
	case "prune-trees":
		res, err := l.Prune(ctx, PruneOptions{ModcacheTrees: true, UnusedFor: 30 * day})
		if err == nil {
			fmt.Printf("trees=%d\n", res.Trees)
		}
		return err
	case "clean":
		_, err := l.Clean(ctx, CleanOptions{})
		return err
	case "repair":
		_, err := l.Verify(ctx, VerifyOptions{Repair: true})
		return err
	}
	return fmt.Errorf("unknown helper op %q", op)
}

// TestReadOnlyTreesAsUser: the build user (uid 1000, not root) prunes
// extracted module trees, repairs a bad one and cleans the caches, although
// Go made the trees' directories read-only (0555).
func TestReadOnlyTreesAsUser(t *testing.T) {
	testenv.RequireRoot(t, "switches to uid 1000")
	setpriv := testenv.RequireTool(t, "setpriv")
	base, err := os.MkdirTemp("", "melcache-ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.RemoveAll(t, base) })
	os.Chmod(base, 0o755)
	// The test binary lives in a 0700 directory: copy it where uid 1000
	// can run it.
	exe, _ := os.Executable()
	bin := filepath.Join(base, "mount.test")
	copyExe(t, exe, bin)

	mc := filepath.Join(base, "mc")
	testenv.CopyTree(t, testenv.RealCache(t), mc)
	l, _ := New(mc, Options{})
	if _, err := l.Prepare(context.Background(), PrepareOptions{Owner: &Owner{1000, 1000}}); err != nil {
		t.Fatal(err)
	}
	trees, _ := scanModTrees(l.CacheDir(GoModCache))
	if len(trees) < 2 {
		t.Fatalf("fixture has %d trees", len(trees))
	}
	if fi, _ := os.Stat(trees[0].dir); fi.Mode().Perm() != 0o555 {
		t.Fatalf("fixture tree %s is %v, want Go's read-only 0555", trees[0].dir, fi.Mode())
	}
	run := func(op string) string {
		cmd := exec.Command(setpriv, "--reuid", "1000", "--regid", "1000", "--clear-groups", bin)
		cmd.Env = append(os.Environ(), helperEnv+"="+op+":"+mc, "HOME="+base)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s as uid 1000: %v\n%s", op, err, out)
		}
		return string(out)
	}
	// A tree with a flipped byte: repair removes it as uid 1000.
	flipByte(t, findFile(t, trees[0].dir, func(p string, fi os.FileInfo) bool { return strings.HasSuffix(p, ".go") }))
	run("repair")
	if _, err := os.Stat(trees[0].dir); err == nil {
		t.Fatalf("repair as uid 1000 kept %s", trees[0].dir)
	}
	if out := run("prune-trees"); !strings.Contains(out, fmt.Sprintf("trees=%d", len(trees)-1)) {
		t.Fatalf("prune as uid 1000: %s", out)
	}
	if left, _ := scanModTrees(l.CacheDir(GoModCache)); len(left) != 0 {
		t.Fatalf("trees left: %v", left)
	}
	// Clean: a fresh copy, trees included.
	testenv.RemoveAll(t, mc)
	testenv.CopyTree(t, testenv.RealCache(t), mc)
	if _, err := l.Prepare(context.Background(), PrepareOptions{Owner: &Owner{1000, 1000}}); err != nil {
		t.Fatal(err)
	}
	run("clean")
	for _, p := range cacheDirs(l) {
		if ents, err := os.ReadDir(p); err != nil || len(ents) != 0 {
			t.Errorf("clean as uid 1000 left %s: %d entries, %v", p, len(ents), err)
		}
	}
}

func copyExe(t *testing.T, src, dst string) {
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
