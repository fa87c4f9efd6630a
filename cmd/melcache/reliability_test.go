package main

// End-to-end reliability tests of issue 6 (docs/reliability.md): the real
// melcache binary, built once per test run, killed at every crash point and
// at random moments; a real docker-registry behind a fault-injecting proxy,
// with htpasswd and TLS; concurrent pulls, pushes and builds on one dir.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// melcacheBin is the melcache CLI: testenv.MelcacheBinary, built once per
// source state and shared by every test and test binary.
func melcacheBin(t testing.TB) string {
	t.Helper()
	return testenv.MelcacheBinary(t)
}

type runResult struct {
	stdout, stderr string
	code           int
}

// run runs the melcache binary with env added to a clean environment.
func mrun(t testing.TB, env []string, args ...string) runResult {
	t.Helper()
	return mrunIn(t, "", env, args...)
}

// mrunIn is mrun in dir ("" for the test's own working directory).
func mrunIn(t testing.TB, dir string, env []string, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(melcacheBin(t), args...)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(t), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{so.String(), se.String(), code}
}

func mustRun(t testing.TB, env []string, args ...string) runResult {
	t.Helper()
	r := mrun(t, env, args...)
	if r.code != 0 {
		t.Fatalf("melcache %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

var baseEnvDirs sync.Map

// baseEnv is a minimal environment: PATH, HOME, and an XDG cache dir of the
// test's own, so the embedded store is per test.
func baseEnv(t testing.TB) []string {
	v, ok := baseEnvDirs.Load(t.Name())
	if !ok {
		v, _ = baseEnvDirs.LoadOrStore(t.Name(), t.TempDir())
	}
	d := v.(string)
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d, "XDG_CACHE_HOME=" + filepath.Join(d, "xdg"),
		"DOCKER_CONFIG=" + filepath.Join(d, "docker"), testenv.GoConfigEnv(t)}
}

// mkCache writes a synthetic cache dir: n GOCACHE -d/-a pairs of size bytes
// and a module with a read-only tree; seed varies the content.
func mkCache(t testing.TB, dir string, seed, n, size int) {
	t.Helper()
	gc := filepath.Join(dir, "gocache")
	os.MkdirAll(gc, 0o755)
	os.WriteFile(filepath.Join(gc, "README"), []byte("This directory holds cached build artifacts from the Go build system.\n"), 0o644)
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	for i := 0; i < n; i++ {
		body := make([]byte, size)
		for j := range body {
			body[j] = byte(r.IntN(16)) // compressible, like object files
		}
		copy(body, fmt.Sprintf("object %d %d\n", seed, i))
		h := sha256.Sum256(body)
		hx := hex.EncodeToString(h[:])
		os.MkdirAll(filepath.Join(gc, hx[:2]), 0o755)
		os.WriteFile(filepath.Join(gc, hx[:2], hx+"-d"), body, 0o644)
		a := sha256.Sum256([]byte(fmt.Sprintf("action %d %d", seed, i)))
		ax := hex.EncodeToString(a[:])
		os.MkdirAll(filepath.Join(gc, ax[:2]), 0o755)
		os.WriteFile(filepath.Join(gc, ax[:2], ax+"-a"), []byte(fmt.Sprintf("v1 %s %s %20d %20d\n", ax, hx, size, 0)), 0o644)
	}
	v := filepath.Join(dir, "gomodcache", "cache", "download", "example.com", "m", "@v")
	os.MkdirAll(v, 0o755)
	os.WriteFile(filepath.Join(v, "list"), []byte(fmt.Sprintf("v1.0.%d\n", seed)), 0o644)
	tree := filepath.Join(dir, "gomodcache", "example.com", fmt.Sprintf("m@v1.0.%d", seed))
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "m.go"), []byte(fmt.Sprintf("package m // %d\n", seed)), 0o444)
	os.Chmod(tree, 0o555)
}

// treeState is the full file set of the two caches: every path with its
// type, mode and content digest (trim.txt, rewritten on each restore, and
// mtimes excluded).
func treeState(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	for _, c := range []string{"gomodcache", "gocache"} {
		root := filepath.Join(dir, c)
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == root {
					return filepath.SkipDir
				}
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, p)
			if isVolatile(rel, d) || isModIndex(filepath.Join(dir, "gocache"), p, d) {
				return nil
			}
			fi, _ := d.Info()
			line := fmt.Sprintf("%s %v", rel, fi.Mode())
			if fi.Mode().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.Sum256(b)
				line += " " + hex.EncodeToString(h[:8])
			}
			lines = append(lines, line)
			return nil
		})
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// isVolatile matches what push leaves out by design (docs/format.md):
// Go's lock and partial files, trim.txt, testexpire.txt, fuzz/.
func isVolatile(rel string, d fs.DirEntry) bool {
	n := d.Name()
	return n == "trim.txt" || n == "testexpire.txt" || strings.HasSuffix(n, ".lock") || strings.HasSuffix(n, ".partial") ||
		rel == filepath.Join("gomodcache", "cache", "lock") || (d.IsDir() && n == "fuzz" && strings.HasPrefix(rel, "gocache"))
}

// isModIndex matches the GOCACHE module-index entries push leaves out
// (docs/format.md, "Excluded entries"): outputs that begin "go index v2"
// and the action entries naming them, as mount's classifier sees them.
func isModIndex(gocache, p string, d fs.DirEntry) bool {
	if !d.Type().IsRegular() || filepath.Dir(filepath.Dir(p)) != gocache {
		return false
	}
	switch {
	case strings.HasSuffix(p, "-a"):
		c, err := mount.ClassifyAction(gocache, p)
		return err == nil && c == mount.OutputModIndex
	case strings.HasSuffix(p, "-d"):
		f, err := os.Open(p)
		if err != nil {
			return false
		}
		defer f.Close()
		return mount.ClassifyOutput(f) == mount.OutputModIndex
	}
	return false
}

// stateDiff lists the lines of two tree states that differ (for failures).
func stateDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for l := range ma {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range mb {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... %d more", len(out)-20))
	}
	return strings.Join(out, "\n")
}

// copyDir copies a cache dir (cp -a keeps modes; 0555 trees included).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// checkClean asserts no journal or staging dir is left and verify passes.
func checkClean(t testing.TB, dir string) {
	t.Helper()
	for _, p := range []string{".melcache/journal.json", ".melcache/staging"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Fatalf("%s left behind in %s", p, dir)
		}
	}
	mustRun(t, nil, "verify", "--dir", dir)
}

// checkLayoutComplete asserts every manifest an OCI layout's index.json
// names, and every blob those manifests name, is present.
func checkLayoutComplete(t testing.TB, layout string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("%s/index.json: %v", layout, err)
	}
	blob := func(d string) string {
		return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	}
	for _, m := range idx.Manifests {
		mb, err := os.ReadFile(blob(m.Digest))
		if err != nil {
			t.Fatalf("index.json names manifest %s, which is missing: %v", m.Digest, err)
		}
		var man struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
		json.Unmarshal(mb, &man)
		for _, d := range append([]string{man.Config.Digest}, func() (ds []string) {
			for _, l := range man.Layers {
				ds = append(ds, l.Digest)
			}
			return
		}()...) {
			if _, err := os.Stat(blob(d)); err != nil {
				t.Fatalf("manifest %s names blob %s, which is missing", m.Digest, d)
			}
		}
	}
	return len(idx.Manifests)
}

// crashFixture is two snapshots in an OCI layout and a dir holding the
// first: pulling the second moves it from old to new.
type crashFixture struct {
	layout, src1, src2 string
	old                string // the dir holding snapshot one (copy it)
	oldState, newState string
}

func newCrashFixture(t *testing.T, n, size int) *crashFixture {
	w := t.TempDir()
	f := &crashFixture{layout: filepath.Join(w, "lay"), src1: filepath.Join(w, "src1"), src2: filepath.Join(w, "src2"), old: filepath.Join(w, "old")}
	mkCache(t, f.src1, 1, n, size)
	mkCache(t, f.src2, 2, n, size)
	mustRun(t, nil, "push", "-q", "--dir", f.src1, "oci:"+f.layout+":one")
	mustRun(t, nil, "push", "-q", "--dir", f.src2, "oci:"+f.layout+":two")
	mustRun(t, nil, "pull", "-q", "--dir", f.old, "oci:"+f.layout+":one")
	f.oldState = treeState(t, f.old)
	ref := filepath.Join(w, "ref")
	copyDir(t, f.old, ref)
	mustRun(t, nil, "pull", "-q", "--dir", ref, "oci:"+f.layout+":two")
	f.newState = treeState(t, ref)
	if f.oldState == f.newState {
		t.Fatal("fixture: old and new states are equal")
	}
	return f
}

// oldOrNew asserts dir holds exactly the old or the new state and says which.
func (f *crashFixture) oldOrNew(t testing.TB, dir string) string {
	t.Helper()
	switch treeState(t, dir) {
	case f.oldState:
		return "old"
	case f.newState:
		return "new"
	}
	t.Fatalf("%s is neither the old nor the new state (a mix):\n%s", dir, treeState(t, dir))
	return ""
}

// TestCrashPointsPull stops pull at each step of staging, journal and swap
// (MELCACHE_TEST_CRASH, exit 137 as for SIGKILL). Afterwards the caches are
// old or new, the next command completes or rolls back the journal, no
// staging dir is left, and verify is clean.
func TestCrashPointsPull(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	f := newCrashFixture(t, 40, 2000)
	for _, tc := range []struct{ point, now, after string }{
		{"pull-journal", "old", "rolled back"},
		{"pull-extract", "old", "rolled back"},
		{"pull-staged", "old", "rolled back"},
		{"pull-swap", "", "completed an interrupted restore"}, // mid-swap: the journal rolls forward
		{"pull-swapped", "new", "completed an interrupted restore"},
		{"pull-cleanup", "new", "cleaned up"},
		{"pull-record", "new", ""},
	} {
		t.Run(tc.point, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			copyDir(t, f.old, dir)
			r := mrun(t, []string{"MELCACHE_TEST_CRASH=" + tc.point}, "pull", "-q", "--dir", dir, "oci:"+f.layout+":two")
			if r.code != 137 {
				t.Fatalf("exit %d, want 137 (crash point not reached?)\n%s", r.code, r.stderr)
			}
			if tc.now != "" {
				if got := f.oldOrNew(t, dir); got != tc.now {
					t.Fatalf("after the crash the caches are %s, want %s", got, tc.now)
				}
			}
			// The next command (status reads; push recovers first) finishes the job.
			r = mustRun(t, nil, "push", "-q", "--dir", dir, "oci:"+f.layout+":after")
			if !strings.Contains(r.stderr, tc.after) {
				t.Fatalf("next command stderr %q, want %q", r.stderr, tc.after)
			}
			want := map[string]string{"pull-journal": "old", "pull-extract": "old", "pull-staged": "old", "pull-swap": "new",
				"pull-swapped": "new", "pull-cleanup": "new", "pull-record": "new"}[tc.point]
			if got := f.oldOrNew(t, dir); got != want {
				t.Fatalf("after recovery the caches are %s, want %s", got, want)
			}
			checkClean(t, dir)
		})
	}
}

// TestCrashPointsPush stops push after a layer upload and before the
// manifest, into an OCI layout and the embedded store: the store never
// names a missing blob, the source dir is untouched, and the re-run
// completes a snapshot that pulls back to the source.
func TestCrashPointsPush(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	w := t.TempDir()
	src := filepath.Join(w, "src")
	mkCache(t, src, 3, 40, 2000)
	srcState := treeState(t, src)
	for _, point := range []string{"push-layer", "push-manifest", "push-record"} {
		for _, store := range []string{"layout", "embedded"} {
			t.Run(point+"/"+store, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "src")
				copyDir(t, src, dir)
				xdg := filepath.Join(t.TempDir(), "xdg")
				env := []string{"XDG_CACHE_HOME=" + xdg}
				layout := filepath.Join(t.TempDir(), "lay")
				args := []string{"push", "-q", "--jobs", "1", "--dir", dir}
				check := layout
				if store == "layout" {
					args = append(args, "oci:"+layout+":t")
				} else {
					check = filepath.Join(xdg, "melcache", "store")
				}
				r := mrun(t, append(env, "MELCACHE_TEST_CRASH="+point), args...)
				if r.code != 137 {
					t.Fatalf("exit %d, want 137\n%s", r.code, r.stderr)
				}
				wantN := 0 // killed before the manifest: none
				if point == "push-record" {
					wantN = 1 // the manifest is in, complete
				}
				if n := checkLayoutComplete(t, findLayout(t, check)); n != wantN {
					t.Fatalf("interrupted push left %d manifests, want %d", n, wantN)
				}
				if treeState(t, dir) != srcState {
					t.Fatal("push changed the source caches")
				}
				checkClean(t, dir)
				mustRun(t, env, args...)
				if n := checkLayoutComplete(t, findLayout(t, check)); n != 1 {
					t.Fatalf("re-run left %d manifests, want 1", n)
				}
				back := filepath.Join(t.TempDir(), "back")
				pull := []string{"pull", "-q", "--dir", back}
				if store == "layout" {
					pull = append(pull, "oci:"+layout+":t")
				}
				mustRun(t, env, pull...)
				if treeState(t, back) != srcState {
					t.Fatal("the snapshot completed after the crash does not restore the source")
				}
			})
		}
	}
}

// findLayout returns the dir under root holding an oci-layout file (the
// embedded store's layout lives below XDG_CACHE_HOME), or root.
func findLayout(t testing.TB, root string) string {
	found := root
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "oci-layout" {
			found = filepath.Dir(p)
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// killTrials is how many random SIGKILLs each of pull and push gets.
const killTrials = 10

// TestKillTrials starts pull and push and SIGKILLs them after a random
// delay within a measured run time: each time, the caches are old or new,
// the store names no missing blob, the next command recovers, verify is
// clean and nothing is left in staging.
func TestKillTrials(t *testing.T) {
	t.Parallel() // slow and self-contained (own dirs, registry, processes): overlaps with the others
	testenv.SkipShort(t, "end-to-end (ten killed pulls and pushes)")
	f := newCrashFixture(t, 300, 16000)
	// Measure one uninterrupted pull and push, set up as the trials are,
	// to spread the kills over.
	probe := filepath.Join(t.TempDir(), "probe")
	copyDir(t, f.old, probe)
	t0 := time.Now()
	mustRun(t, nil, "pull", "-q", "--dir", probe, "oci:"+f.layout+":two")
	pullTime := time.Since(t0)
	pushSetup := func() (layout, dir string) {
		layout = filepath.Join(t.TempDir(), "lay")
		// The base (snapshot one) is in the layout; the push adds two.
		mustRun(t, nil, "push", "-q", "--dir", f.src1, "oci:"+layout+":one")
		dir = filepath.Join(t.TempDir(), "d")
		copyDir(t, f.src2, dir)
		return layout, dir
	}
	layout, dir := pushSetup()
	t0 = time.Now()
	mustRun(t, nil, "push", "-q", "--dir", dir, "oci:"+layout+":two")
	pushTime := time.Since(t0)
	t.Logf("uninterrupted: pull %v, push %v", pullTime, pushTime)

	seen := map[string]int{}
	for i := 0; i < killTrials; i++ {
		dir := filepath.Join(t.TempDir(), "d")
		copyDir(t, f.old, dir)
		delay := time.Duration(rand.Int64N(int64(pullTime)))
		code := killAfter(t, delay, nil, "pull", "-q", "--dir", dir, "oci:"+f.layout+":two")
		state := f.oldOrNew(t, dir)
		pending := exists(filepath.Join(dir, ".melcache", "journal.json"))
		mustRun(t, nil, "pull", "-q", "--dir", dir, "oci:"+f.layout+":two")
		if f.oldOrNew(t, dir) != "new" {
			t.Fatal("the pull after the kill did not give the new state")
		}
		checkClean(t, dir)
		key := fmt.Sprintf("pull exit=%d state=%s journal=%v", code, state, pending)
		seen[key]++
		t.Logf("pull trial %d: killed after %v: %s", i, delay, key)
	}
	// Odd trials push to the embedded store (tag "latest", its layout
	// under XDG_CACHE_HOME), even ones to an OCI layout.
	for i := 0; i < killTrials; i++ {
		layout, dir := pushSetup()
		var env []string
		ref := []string{"oci:" + layout + ":two"}
		store := "layout"
		if i%2 == 1 {
			xdg := filepath.Join(t.TempDir(), "xdg")
			env, ref, store = []string{"XDG_CACHE_HOME=" + xdg}, nil, "embedded"
			layout = filepath.Join(xdg, "melcache", "store")
			mustRun(t, env, "push", "-q", "--dir", f.src1)
		}
		delay := time.Duration(rand.Int64N(int64(pushTime)))
		code := killAfter(t, delay, env, append([]string{"push", "-q", "--dir", dir}, ref...)...)
		n := checkLayoutComplete(t, layout)
		if treeState(t, dir) != treeState(t, f.src2) {
			t.Fatal("killed push changed the source caches")
		}
		mustRun(t, env, append([]string{"push", "-q", "--dir", dir}, ref...)...)
		checkLayoutComplete(t, layout)
		back := filepath.Join(t.TempDir(), "back")
		mustRun(t, env, append([]string{"pull", "-q", "--replace", "--dir", back}, ref...)...)
		if treeState(t, back) != treeState(t, f.src2) {
			t.Fatal("snapshot pushed after a kill does not restore the source")
		}
		checkClean(t, dir)
		key := fmt.Sprintf("push %s exit=%d manifests-after-kill=%d", store, code, n)
		seen[key]++
		t.Logf("push trial %d: killed after %v: %s", i, delay, key)
	}
	t.Logf("outcomes: %v", seen)
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// killAfter starts melcache and SIGKILLs it after delay (if still running);
// it returns the exit code (137 when killed).
func killAfter(t testing.TB, delay time.Duration, env []string, args ...string) int {
	t.Helper()
	cmd := exec.Command(melcacheBin(t), args...)
	cmd.Env = append(baseEnv(t), env...)
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		t.Fatalf("melcache %s failed (not killed): %v\n%s", strings.Join(args, " "), err, se.String())
	}
	return 0
}

// raceRounds is how many rounds a test that races commands runs: each
// round is the same check on a new interleaving, so -short runs one and
// the full suite full.
func raceRounds(full int) int {
	if testing.Short() {
		return 1
	}
	return full
}

// TestConcurrentPullsAndPushes: two pulls and two pushes started at once on
// one dir serialize through its lock: all succeed, the dir ends as one of
// the states a serial order gives, every pushed snapshot is one of the
// states the dir held (never a half-restored one), and verify is clean.
func TestConcurrentPullsAndPushes(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	f := newCrashFixture(t, 100, 4000)
	// States a serial order can give: old+two (= f.newState), and
	// old+two+one (one pulled last).
	b := filepath.Join(t.TempDir(), "b")
	copyDir(t, f.old, b)
	mustRun(t, nil, "pull", "-q", "--dir", b, "oci:"+f.layout+":two")
	mustRun(t, nil, "pull", "-q", "--dir", b, "oci:"+f.layout+":one")
	valid := map[string]string{f.oldState: "old", f.newState: "old+two", treeState(t, b): "old+two+one"}
	for round := range raceRounds(2) {
		dir := filepath.Join(t.TempDir(), "d")
		copyDir(t, f.old, dir)
		out := filepath.Join(t.TempDir(), "out")
		cmds := [][]string{
			{"pull", "-v", "--dir", dir, "oci:" + f.layout + ":two"},
			{"push", "-v", "--dir", dir, "oci:" + out + ":p1"},
			{"pull", "-v", "--dir", dir, "oci:" + f.layout + ":one"},
			{"push", "-v", "--dir", dir, "oci:" + out + ":p2"},
		}
		res := make([]runResult, len(cmds))
		var wg sync.WaitGroup
		for i, c := range cmds {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = mrun(t, nil, c...) }()
		}
		wg.Wait()
		waited := 0
		for i, r := range res {
			if r.code != 0 {
				t.Fatalf("%v: exit %d\n%s", cmds[i], r.code, r.stderr)
			}
			if strings.Contains(r.stderr, "melcache: waiting for the lock on ") {
				waited++
			}
		}
		final, ok := valid[treeState(t, dir)]
		if !ok {
			t.Fatalf("round %d: the dir is in no serial state", round)
		}
		checkClean(t, dir)
		for _, tag := range []string{"p1", "p2"} {
			back := filepath.Join(t.TempDir(), tag)
			mustRun(t, nil, "pull", "-q", "--replace", "--dir", back, "oci:"+out+":"+tag)
			if _, ok := valid[treeState(t, back)]; !ok {
				t.Fatalf("round %d: pushed snapshot %s is in no serial state", round, tag)
			}
		}
		checkLayoutComplete(t, out)
		t.Logf("round %d: 4 commands, %d waited for the lock, final state %s", round, waited, final)
	}
}

// TestBuildsShareWhilePullWaits: two Go builds run on the dir under shared
// locks (as melcache build holds one around melange) while a pull waits for
// the exclusive lock; the pull proceeds only when both builds are done.
func TestBuildsShareWhilePullWaits(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (real Go builds under the lock)")
	f := newCrashFixture(t, 20, 1000)
	dir := filepath.Join(t.TempDir(), "d")
	t0 := time.Now()
	testenv.CopyTree(t, testenv.RealCache(t), dir)
	t.Logf("copied the real cache in %v", time.Since(t0))
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var locks []*mount.Lock
	for i := 0; i < 2; i++ {
		k, err := l.Lock(ctx, mount.Shared, mount.LockOptions{NoWait: true})
		if err != nil {
			t.Fatalf("shared lock %d: %v", i, err)
		}
		locks = append(locks, k)
	}
	cmd := exec.Command(melcacheBin(t), "pull", "-v", "--dir", dir, "oci:"+f.layout+":two")
	cmd.Env = baseEnv(t)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var log bytes.Buffer
	waiting := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "melcache: waiting for the lock on ") {
				close(waiting)
				signalled = true
			}
		}
		done <- cmd.Wait()
	}()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("pull did not wait for the shared holders: %v\n%s", err, log.String())
	}
	// Two builds share the dir while the pull waits.
	// A small program: the standard library it needs is in the real
	// cache already (same -trimpath), so each build compiles one package
	// and links.
	mod := t.TempDir()
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/hello\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Fprintln(os.Stdout, \"hello\") }\n"), 0o644)
	env := testenv.GoEnv{ModCache: l.CacheDir(mount.GoModCache), Cache: l.CacheDir(mount.GoCache), Extra: []string{"GOPROXY=off"}}.Environ()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	outs := make([][]byte, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "out"), ".")
			c.Dir, c.Env = mod, env
			outs[i], errs[i] = c.CombinedOutput()
		}()
	}
	wg.Wait()
	t.Logf("builds done at %v", time.Since(t0))
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("build %d under the shared lock: %v\n%s", i, errs[i], outs[i])
		}
	}
	select {
	case err := <-done:
		t.Fatalf("pull finished while builds held shared locks: %v", err)
	default:
	}
	for _, k := range locks {
		k.Unlock()
	}
	if err := <-done; err != nil {
		t.Fatalf("pull after the builds: %v\n%s", err, log.String())
	}
	t.Logf("pull done at %v", time.Since(t0))
	checkClean(t, dir)
}
