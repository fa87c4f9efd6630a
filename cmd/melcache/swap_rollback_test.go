package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// Issue 11, finding 3: a swap that fails half way is undone, not left half
// done. MELCACHE_TEST_FAIL makes the swap's first rename of a cache fail as
// EBUSY or EACCES would after the preflight (which catches those for real:
// TestSwapPreflightMountPoint).

// TestSwapFailureRollsBack: the rename of the second cache (gocache) fails
// after the first (gomodcache) was swapped; the pull fails naming the
// cause, the caches are the old ones, no staging or journal stays, status
// and doctor are clean, and the next pull works.
func TestSwapFailureRollsBack(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	f := newCrashFixture(t, 20, 1000)
	for _, point := range []string{"swap-gocache", "swap-gomodcache"} {
		t.Run(point, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			copyDir(t, f.old, dir)
			r := mrun(t, []string{"MELCACHE_TEST_FAIL=" + point}, "pull", "-q", "--dir", dir, "oci:"+f.layout+":two")
			if r.code == 0 || r.code == 137 {
				t.Fatalf("pull with a failing swap: exit %d, want a failure\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "injected failure") || !strings.Contains(r.stderr, "the old caches were put back") {
				t.Errorf("pull error %q: want the cause and that the old caches were put back", r.stderr)
			}
			if got := f.oldOrNew(t, dir); got != "old" {
				t.Fatalf("after the failed swap the caches are %s, want old", got)
			}
			checkClean(t, dir)
			if st := mustRun(t, nil, "status", "--dir", dir); strings.Contains(st.stdout, "pending restore") {
				t.Errorf("status after the rollback reports a pending restore:\n%s", st.stdout)
			}
			doctorJournal(t, dir, "pass  journal")
			mustRun(t, nil, "pull", "-q", "--dir", dir, "oci:"+f.layout+":two")
			if got := f.oldOrNew(t, dir); got != "new" {
				t.Fatalf("the next pull left the caches %s, want new", got)
			}
		})
	}
}

// TestSwapUndoCrash: a crash while a failed swap is being undone (journal
// "unswap") recovers to the old caches. pull-unswap crashes before any
// undo; pull-unswap-half after gomodcache's new tree went back to staging
// and before its old one came back, so gomodcache is missing. status and
// doctor report the pending undo with the fix; the next command applies it.
func TestSwapUndoCrash(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	f := newCrashFixture(t, 20, 1000)
	for _, point := range []string{"pull-unswap", "pull-unswap-half"} {
		t.Run(point, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			copyDir(t, f.old, dir)
			r := mrun(t, []string{"MELCACHE_TEST_FAIL=swap-gocache", "MELCACHE_TEST_CRASH=" + point},
				"pull", "-q", "--dir", dir, "oci:"+f.layout+":two")
			if r.code != 137 {
				t.Fatalf("exit %d, want 137 (crash point not reached?)\n%s", r.code, r.stderr)
			}
			j, err := os.ReadFile(filepath.Join(dir, ".melcache", "journal.json"))
			if err != nil || !strings.Contains(string(j), `"phase": "unswap"`) || !strings.Contains(string(j), "injected failure") {
				t.Fatalf("journal after the crash: %v\n%s", err, j)
			}
			st := mustRun(t, nil, "status", "--dir", dir)
			if !strings.Contains(st.stdout, "pending restore: the swap of a pull of sha256:") || !strings.Contains(st.stdout, "is being undone") ||
				!strings.Contains(st.stdout, "fix: run melcache pull --dir "+dir) {
				t.Errorf("status does not report the pending undo with its fix:\n%s", st.stdout)
			}
			doctorJournal(t, dir, "fail  journal", "is being undone", "fix: run melcache pull --dir "+dir)
			// The fix status names: any command that changes the caches.
			r = mustRun(t, nil, "verify", "--dir", dir)
			if !strings.Contains(r.stderr, "rolled back the failed swap") {
				t.Errorf("verify stderr %q: want the rollback reported", r.stderr)
			}
			if got := f.oldOrNew(t, dir); got != "old" {
				t.Fatalf("after recovering the undo the caches are %s, want old", got)
			}
			checkClean(t, dir)
			doctorJournal(t, dir, "pass  journal")
		})
	}
}

// TestSwapPreflightMountPoint: a cache that is a mount point (rename gives
// EBUSY) refuses the pull before the journal says "swap": the caches are
// untouched and nothing is left. Runs the pull in a private mount
// namespace (unshare -m), so it needs root.
func TestSwapPreflightMountPoint(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	if os.Geteuid() != 0 {
		if testenv.InCI() {
			t.Fatal("CI=true: the test mounts a tmpfs, which needs root")
		}
		t.Skip("mounts a tmpfs on a cache: needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare (util-linux) not found: %v", err)
	}
	f := newCrashFixture(t, 20, 1000)
	dir := filepath.Join(t.TempDir(), "d")
	copyDir(t, f.old, dir)
	gc := filepath.Join(dir, "gocache")
	// Inside the namespace: bind gocache onto itself (a mount point with
	// the same content), pull, and list the caches while still mounted.
	script := `set -e
mount --bind "$1" "$1"
set +e
"$2" pull -q --dir "$3" "$4"; echo "rc=$?"
test -e "$3/.melcache/journal.json" && echo journal-left
test -e "$3/.melcache/staging" && echo staging-left
exit 0`
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script, "sh", gc, melcacheBin(t), dir, "oci:"+f.layout+":two")
	cmd.Env = baseEnv(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unshare: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "rc=1") || !strings.Contains(s, gc+" is a mount point") {
		t.Fatalf("pull into a dir whose gocache is a mount point: want a refusal naming it\n%s", s)
	}
	if strings.Contains(s, "journal-left") || strings.Contains(s, "staging-left") {
		t.Fatalf("the refused pull left state behind:\n%s", s)
	}
	if got := f.oldOrNew(t, dir); got != "old" {
		t.Fatalf("after the refused pull the caches are %s, want old", got)
	}
	checkClean(t, dir)
}

// doctorJournal asserts doctor's journal line holds each of want.
func doctorJournal(t *testing.T, dir string, want ...string) {
	t.Helper()
	d := mrun(t, nil, "doctor", "--dir", dir)
	line := ""
	for _, l := range strings.Split(d.stdout, "\n") {
		if strings.Contains(l, "  journal ") {
			line = l
		}
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("doctor's journal line %q lacks %q\n%s", line, w, d.stdout)
		}
	}
}

// TestSwapPreflightNotWritable: the build user (uid 65534, via setpriv)
// pulls into a root-owned DIR whose caches and state it owns, the layout
// mount/clean.go describes. Renaming DIR/gomodcache needs write access to
// DIR (EACCES), so the pull is refused before the swap with the reason,
// the caches stay old and no journal or staging is left; before, the swap
// failed half way and every later command failed with it.
func TestSwapPreflightNotWritable(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	if os.Geteuid() != 0 {
		if testenv.InCI() {
			t.Fatal("CI=true: the test switches to uid 65534, which needs root")
		}
		t.Skip("switches to uid 65534: needs root")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	f := newCrashFixture(t, 20, 1000)
	// Everything the build user reads must be reachable: its own base
	// dir, a copy of the binary and of the layout.
	base, err := os.MkdirTemp("", "melcache-eacces-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "melcache")
	copyDir(t, melcacheBin(t), bin)
	layout := filepath.Join(base, "lay")
	copyDir(t, f.layout, layout)
	dir := filepath.Join(base, "d")
	copyDir(t, f.old, dir)
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{layout, home, filepath.Join(dir, "gomodcache"), filepath.Join(dir, "gocache"), filepath.Join(dir, ".melcache")} {
		if out, err := exec.Command("chown", "-R", "65534:65534", p).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v\n%s", p, err, out)
		}
	}
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", bin, "pull", "-q", "--dir", dir, "oci:"+layout+":two")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, "xdg"), testenv.GoConfigEnv(t)}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("pull as uid 65534 into a root-owned dir: %v, want exit 1\n%s", err, out)
	}
	if want := dir + " is not writable by uid 65534"; !strings.Contains(string(out), want) {
		t.Fatalf("pull error does not say %q:\n%s", want, out)
	}
	if got := f.oldOrNew(t, dir); got != "old" {
		t.Fatalf("after the refused pull the caches are %s, want old", got)
	}
	checkClean(t, dir)
}
