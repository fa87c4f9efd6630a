package cacheprog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/cacheprog"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

func goCmd(t testing.TB, dir string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestRealGoThroughCacheprog runs go build and go test of a real module
// through `melcache cacheprog` (the CLI, as GOCACHEPROG): the binary is
// the same as plain go's, the second run of each is all hits, plain go
// reuses what cacheprog stored (no compiles), verify finds the entries
// well-formed, a mark counts a cacheprog build's hits, and push then pull
// give a dir that serves all hits.
func TestRealGoThroughCacheprog(t *testing.T) {
	testenv.SkipShort(t, "real Go build")
	mc := testenv.MelcacheBinary(t)
	seedSrc, _ := filepath.Abs("testdata/seed")
	seed := testenv.SeedCache(t, seedSrc) // plain go's entries: the first run reads them
	src, _ := filepath.Abs("testdata/hello")
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "D")
	testenv.CopyTree(t, filepath.Join(seed, "gocache"), filepath.Join(dir, "gocache"))
	plain := filepath.Join(tmp, "plain")
	testenv.CopyTree(t, filepath.Join(seed, "gocache"), plain)
	modcache := filepath.Join(dir, "gomodcache")
	out := filepath.Join(tmp, "out")
	var runIn func(dir, name string, args ...string) (cacheprog.Report, []byte)

	run := func(name string, args ...string) (cacheprog.Report, []byte) {
		t.Helper()
		return runIn(dir, name, args...)
	}
	runIn = func(dir, name string, args ...string) (cacheprog.Report, []byte) {
		t.Helper()
		statsFile := filepath.Join(tmp, name+".json")
		env := testenv.GoEnv{ModCache: modcache, Cache: filepath.Join(tmp, "gocache-"+name), Extra: []string{
			"GOCACHEPROG=" + mc + " cacheprog --dir " + dir + " --stats-json " + statsFile}}
		outb := goCmd(t, src, env.Environ(), args...)
		var rep cacheprog.Report
		data, err := os.ReadFile(statsFile)
		if err != nil {
			t.Fatalf("%s: no stats: %v\n%s", name, err, outb)
		}
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Errors != 0 || rep.Gets != rep.Hits+rep.Misses {
			t.Fatalf("%s: %+v", name, rep)
		}
		return rep, outb
	}
	build := []string{"build", "-trimpath", "-o", filepath.Join(out, "hello"), "."}
	test := []string{"test", "-trimpath", "./..."}

	b1, _ := run("build1", build...)
	if b1.Misses == 0 || b1.Puts == 0 || b1.Hits == 0 {
		t.Errorf("first build %+v: want misses and puts (hello's packages) and hits (the standard library plain go wrote)", b1)
	}
	t1, testOut := run("test1", test...)
	if !bytes.Contains(testOut, []byte("ok")) || t1.Puts == 0 {
		t.Errorf("first test %+v:\n%s", t1, testOut)
	}
	for _, r := range []struct {
		name string
		args []string
	}{{"build2", build}, {"test2", test}} {
		rep, outb := run(r.name, r.args...)
		if rep.Gets == 0 || rep.Hits != rep.Gets || rep.Puts != 0 {
			t.Errorf("%s: %+v, want all hits and no puts\n%s", r.name, rep, outb)
		}
		if r.name == "test2" && !bytes.Contains(outb, []byte("(cached)")) {
			t.Errorf("second go test did not use its cached result:\n%s", outb)
		}
	}

	// The same binary as plain go's, from plain go's own cache.
	plainEnv := testenv.GoEnv{ModCache: modcache, Cache: plain}
	goCmd(t, src, plainEnv.Environ(), "build", "-trimpath", "-o", filepath.Join(out, "plain"), ".")
	got, _ := os.ReadFile(filepath.Join(out, "hello"))
	want, _ := os.ReadFile(filepath.Join(out, "plain"))
	if len(got) == 0 || !bytes.Equal(got, want) {
		t.Errorf("binary through cacheprog (%d bytes) differs from plain go's (%d bytes)", len(got), len(want))
	}
	// Plain go on the same dir compiles nothing: cacheprog's entries are
	// Go's own.
	sameEnv := testenv.GoEnv{ModCache: modcache, Cache: filepath.Join(dir, "gocache")}
	x := goCmd(t, src, sameEnv.Environ(), "build", "-x", "-trimpath", "-o", filepath.Join(out, "again"), ".")
	if n := testenv.CountCompiles(x); n != 0 {
		t.Errorf("plain go on cacheprog's dir compiled %d packages", n)
	}
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Verify(context.Background(), mount.VerifyOptions{})
	if err != nil || !res.OK() || res.Actions == 0 {
		t.Errorf("verify after cacheprog: %+v, %v", res, err)
	}

	// Use marks: after a mark, a build through cacheprog refreshes every
	// entry it uses, so the mark's count sees hits and no compiles.
	rec, err := l.Mark(context.Background(), mount.MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	run("build3", build...)
	use, err := l.Use(rec.Time)
	if err != nil || use.Hits == 0 || use.Misses != 0 || use.CompileActions.Reused == 0 || use.CompileActions.Run != 0 {
		t.Errorf("use since the mark: %+v, %v; want hits, reused compiles and nothing written", use, err)
	}

	// A snapshot of the dir restores into a new one that serves all hits
	// but the module-index entries, which push leaves out (Go rebuilds
	// them in milliseconds; docs/format.md, "Excluded entries"): one miss
	// per left-out action entry.
	ref := "oci:" + filepath.Join(tmp, "layout") + ":t"
	pushOut, err := exec.Command(mc, "push", "--json", "--dir", dir, ref).Output()
	if err != nil {
		t.Fatalf("melcache push: %v\n%s", err, pushOut)
	}
	var pushed oci.Result
	if err := json.Unmarshal(pushOut, &pushed); err != nil {
		t.Fatalf("push --json: %v\n%s", err, pushOut)
	}
	if b, err := exec.Command(mc, "pull", "--dir", filepath.Join(tmp, "D2"), ref).CombinedOutput(); err != nil {
		t.Fatalf("melcache pull: %v\n%s", err, b)
	}
	// ModIndex counts outputs and their action entries alike; the build
	// asks for some of them, and compiles nothing.
	rep, outb := runIn(filepath.Join(tmp, "D2"), "pulled", "build", "-x", "-trimpath", "-o", filepath.Join(out, "pulled"), ".")
	if n := testenv.CountCompiles(outb); rep.Gets == 0 || n != 0 || rep.Misses > int64(pushed.ModIndex/2) || rep.Puts != rep.Misses {
		t.Errorf("build from the pulled dir: %+v, %d compiles; want hits, no compile, misses only for the %d module-index entries push left out\n%s",
			rep, n, pushed.ModIndex/2, outb)
	}
}

// TestCacheprogRefWithoutTag: a REF that names no tag or digest, without
// --restore-keys, is a usage error before anything is read or written.
func TestCacheprogRefWithoutTag(t *testing.T) {
	mc := testenv.MelcacheBinary(t)
	dir := filepath.Join(t.TempDir(), "D")
	cmd := exec.Command(mc, "cacheprog", "--dir", dir, "oci:"+filepath.Join(t.TempDir(), "layout"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "names no tag or digest") {
		t.Fatalf("cacheprog REF without a tag: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the cache dir was made: %v", err)
	}
}
