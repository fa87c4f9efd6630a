package cacheprog_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/cacheprog"
	"github.com/melcache/melcache/internal/testenv"
)

// TestRealGoLazyFromSnapshot: a real go build of a small module through
// `melcache cacheprog --dir EMPTY REF`, where REF is a snapshot (in the
// real registry) of a cache holding that module's objects plus another
// program's and the standard library: the binary is plain go's, the
// report shows remote fetches and range requests (206 answers in the
// registry's log), and a second run is all local hits with no remote
// fetch.
func TestRealGoLazyFromSnapshot(t *testing.T) {
	testenv.SkipShort(t, "real Go build")
	mc := testenv.MelcacheBinary(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	seedSrc, _ := filepath.Abs("testdata/seed")
	seed := testenv.SeedCache(t, seedSrc)
	src, _ := filepath.Abs("testdata/hello")
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	modcache := filepath.Join(tmp, "modcache")

	// The snapshot: seed's cache plus hello built by plain go.
	full := filepath.Join(tmp, "full")
	testenv.CopyTree(t, filepath.Join(seed, "gocache"), filepath.Join(full, "gocache"))
	plainEnv := testenv.GoEnv{ModCache: modcache, Cache: filepath.Join(full, "gocache")}
	goCmd(t, src, plainEnv.Environ(), "build", "-trimpath", "-o", filepath.Join(out, "plain"), ".")
	ref := reg.Host + "/cache/lazy:t"
	if b, err := exec.Command(mc, "push", "--dir", full, "--only", "gocache", ref).CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, b)
	}

	dir := filepath.Join(tmp, "D") // empty: every object comes from the snapshot
	run := func(name string) cacheprog.Report {
		t.Helper()
		statsFile := filepath.Join(tmp, name+".json")
		env := testenv.GoEnv{ModCache: modcache, Cache: filepath.Join(tmp, "gocache-"+name), Extra: []string{
			"GOCACHEPROG=" + mc + " cacheprog --dir " + dir + " --stats-json " + statsFile + " " + ref}}
		outb := goCmd(t, src, env.Environ(), "build", "-trimpath", "-o", filepath.Join(out, "lazy"), ".")
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
		return rep
	}
	r1 := run("lazy1")
	if r1.RemoteFetches == 0 || r1.Hits == 0 || r1.RemoteRequests == 0 || r1.RemoteDownloaded == 0 || r1.RemoteIndexBytes == 0 {
		t.Errorf("lazy build: %+v, want hits fetched from the snapshot", r1)
	}
	got, _ := os.ReadFile(filepath.Join(out, "lazy"))
	want, _ := os.ReadFile(filepath.Join(out, "plain"))
	if len(got) == 0 || !bytes.Equal(got, want) {
		t.Errorf("lazy binary (%d bytes) differs from plain go's (%d bytes)", len(got), len(want))
	}
	ranged := 0
	for _, line := range reg.Requests(t, "GET", "/blobs/sha256:") {
		if strings.Contains(line, `" 206 `) {
			ranged++
		}
	}
	if ranged == 0 || int64(ranged) != r1.RemoteRequests {
		t.Errorf("%d ranged GETs in the registry's log, the report says %d", ranged, r1.RemoteRequests)
	}
	t.Logf("lazy build: %+v", r1)
	r2 := run("lazy2")
	if r2.Gets == 0 || r2.Hits != r2.Gets || r2.RemoteFetches != 0 || r2.Puts != 0 {
		t.Errorf("second lazy build: %+v, want all local hits", r2)
	}
}
