package mount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// TestPrepareLayoutIdempotentForeign: prepare creates the layout with Go's
// README, a second prepare changes nothing, and files that are not ours (apk
// files and melange's fetch cache, as wolfi keeps them there) are untouched.
func TestPrepareLayoutIdempotentForeign(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(testenv.TempDir(t), "mc")
	foreign := map[string]string{
		"x86_64/APKINDEX.tar.gz":  "apk index",
		"x86_64/go-1.26-r0.apk":   "apk",
		"sha256:0123abcd/payload": "fetched",
		"README.txt":              "mine, not melcache's",
	}
	for p, c := range foreign {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := treeState(t, dir)
	l, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Prepare(ctx, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed() {
		t.Fatal("first prepare reports no change")
	}
	for _, p := range []string{"gomodcache", "gocache", ".melcache"} {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || !fi.IsDir() {
			t.Fatalf("%s: %v", p, err)
		}
	}
	readme, err := os.ReadFile(filepath.Join(dir, "gocache", "README"))
	if err != nil || string(readme) != GoCacheREADME {
		t.Fatalf("gocache/README = %q, %v", readme, err)
	}
	after := treeState(t, dir)
	for p := range before {
		if before[p] != after[p] {
			t.Errorf("foreign %s changed: %s -> %s", p, before[p], after[p])
		}
	}
	// Second run: nothing at all changes.
	res, err = l.Prepare(ctx, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() {
		t.Errorf("second prepare changed something: %+v", res)
	}
	if d := diffStates(after, treeState(t, dir)); len(d) > 0 {
		t.Errorf("second prepare changed the tree:\n%s", strings.Join(d, "\n"))
	}
	// Clean removes our caches and nothing else.
	cres, err := l.Clean(ctx, CleanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cres.Emptied) != 2 || cres.Entries != 1 { // gocache/README
		t.Errorf("clean: %+v", cres)
	}
	final := treeState(t, dir)
	for p, v := range before {
		if final[p] != v {
			t.Errorf("clean touched foreign %s", p)
		}
	}
	for p := range final {
		if _, ok := before[p]; !ok && p != "." && p != "gocache" && p != "gomodcache" && !strings.HasPrefix(p, ".melcache") {
			t.Errorf("clean left %s", p)
		}
	}
}

// TestPrepareErrorsChangeNothing: each bad input fails with one line naming
// the path and leaves the filesystem as it was.
func TestPrepareErrorsChangeNothing(t *testing.T) {
	root := testenv.TempDir(t)
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		dir  string
		o    PrepareOptions
		want string
	}{
		"file":           {file, PrepareOptions{}, "not a directory"},
		"missing parent": {filepath.Join(root, "no", "such", "mc"), PrepareOptions{}, "parent directory " + filepath.Join(root, "no", "such") + " does not exist"},
		"parent is file": {filepath.Join(file, "mc"), PrepareOptions{}, "is not a directory"},
		"from-host":      {filepath.Join(root, "mc"), PrepareOptions{FromHost: filepath.Join(root, "nohost")}, "nohost"},
	} {
		t.Run(name, func(t *testing.T) {
			before := treeState(t, root)
			l, err := New(tc.dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Prepare(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, tc.want)
			}
			if d := diffStates(before, treeState(t, root)); len(d) > 0 {
				t.Errorf("failed prepare changed:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestRecipeMode: the whole directory is the module cache, the state lives
// outside it, and there is no build cache.
func TestRecipeMode(t *testing.T) {
	ctx := context.Background()
	root := testenv.TempDir(t)
	l, err := New(filepath.Join(root, "gomod"), Options{Recipe: true, StateRoot: filepath.Join(root, "state")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(ctx, PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(l.State, l.Dir) {
		t.Fatalf("recipe state %s inside %s", l.State, l.Dir)
	}
	ents, _ := os.ReadDir(l.Dir)
	if len(ents) != 0 {
		t.Fatalf("recipe dir holds %v", ents)
	}
	if _, err := l.Mark(ctx, MarkOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := l.Status(ctx, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Caches) != 1 || st.Caches[0].Name != GoModCache || st.Caches[0].GuestPath != GuestRoot {
		t.Fatalf("recipe status caches: %+v", st.Caches[0])
	}
	// Clean refuses to empty a directory that does not look like a module
	// cache, and empties one that does.
	os.WriteFile(filepath.Join(l.Dir, "keep"), nil, 0o644)
	if res, err := l.Clean(ctx, CleanOptions{}); err != nil || len(res.Emptied) != 0 {
		t.Fatalf("clean of a non-module-cache: %v %v", res, err)
	}
	os.MkdirAll(filepath.Join(l.Dir, "cache", "download"), 0o755)
	os.MkdirAll(filepath.Join(l.Dir, "example.com", "m@v1.0.0"), 0o755)
	os.Chmod(filepath.Join(l.Dir, "example.com", "m@v1.0.0"), 0o555)
	if _, err := l.Clean(ctx, CleanOptions{}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(l.Dir); len(ents) != 0 {
		t.Fatalf("recipe clean left %v", ents)
	}
}

// TestHeldLockIsReused: every library call accepts the caller's lock, so a
// command composed of others (melcache build) never waits on itself; without
// it, the same calls find the directory locked.
func TestHeldLockIsReused(t *testing.T) {
	ctx := context.Background()
	l, err := New(filepath.Join(testenv.TempDir(t), "mc"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(ctx, PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	held, err := l.Lock(ctx, Exclusive, LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	nowait := LockOptions{NoWait: true}
	calls := map[string]func(*Lock) error{
		"prepare": func(k *Lock) error {
			_, err := l.Prepare(ctx, PrepareOptions{Lock: k, LockOptions: nowait})
			return err
		},
		"mark":  func(k *Lock) error { _, err := l.Mark(ctx, MarkOptions{Lock: k, LockOptions: nowait}); return err },
		"prune": func(k *Lock) error { _, err := l.Prune(ctx, PruneOptions{Lock: k, LockOptions: nowait}); return err },
		"repair": func(k *Lock) error {
			_, err := l.Verify(ctx, VerifyOptions{Repair: true, Lock: k, LockOptions: nowait})
			return err
		},
		"clean": func(k *Lock) error { _, err := l.Clean(ctx, CleanOptions{Lock: k, LockOptions: nowait}); return err },
	}
	for name, call := range calls {
		if err := call(held); err != nil {
			t.Errorf("%s with the held lock: %v", name, err)
		}
		var le *LockedError
		if err := call(nil); !errors.As(err, &le) {
			t.Errorf("%s without the held lock: %v, want *LockedError", name, err)
		}
	}
}
