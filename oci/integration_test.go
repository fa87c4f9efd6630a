package oci

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// registryStore opens repo on a real docker-registry through the transport
// the CLI uses.
func registryStore(t *testing.T, reg *testenv.Registry, repo string) Store {
	t.Helper()
	ref, err := ParseRef(reg.Host+"/"+repo, RefOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := OpenStore(context.Background(), ref, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ageTree(t testing.TB, dir string, age time.Duration) {
	t.Helper()
	old := time.Now().Add(-age)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			os.Chtimes(p, old, old)
		}
		return nil
	})
}

// offlineEnv makes go use only the given caches: no proxy, no sumdb, so a
// module the restore lost fails the build instead of being fetched.
func offlineEnv(l mount.Layout) testenv.GoEnv {
	return testenv.GoEnv{ModCache: l.CacheDir(mount.GoModCache), Cache: l.CacheDir(mount.GoCache),
		Extra: []string{"GOPROXY=off", "GOFLAGS=-mod=mod"}}
}

// secondProgram writes the round trip's second real program into a fresh
// module: a module the fixture lacks (golang.org/x/mod, from the host's
// module cache or proxy) and standard packages it lacks (encoding/json), so
// its build adds to both caches: the delta has module files and build
// outputs. Small, unlike a build of a whole tool.
func secondProgram(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testenv.TempDir(t), "second")
	files := map[string]string{
		"go.mod": "module example.com/second\n\ngo 1.26.0\n\nrequire golang.org/x/mod v0.42.0\n",
		"main.go": `package main

import (
	"encoding/json"
	"os"

	"golang.org/x/mod/semver"
)

func main() {
	json.NewEncoder(os.Stdout).Encode(semver.Canonical("v1.2"))
}
`,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRegistryRoundTrip is the main "done when": a real cache
// (testenv.RealCache: a real go build of a cobra program), aged 10 days, pushed to a real registry,
// pulled into an empty dir byte for byte, trim forced, rebuilt with zero
// compile actions; then an unchanged re-push, a delta push after building
// a second real program, and a pull of only the new layers.
func TestRegistryRoundTrip(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (real Go builds, registry)")
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	work := testenv.TempDir(t)
	testenv.CopyTree(t, testenv.RealCache(t), filepath.Join(work, "src"))
	src, _ := mount.New(filepath.Join(work, "src"), mount.Options{})
	// Age the source by 10 days: a restore that kept these mtimes (or
	// zeroed them) would let Go's trim wipe the cache below.
	ageTree(t, src.Dir, 10*24*time.Hour)
	s := registryStore(t, reg, "cache")

	res, err := Push(ctx, src, s, "k1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	puts := len(reg.Requests(t, "PUT", "/blobs/uploads/"))
	if res.Layers != 2 || puts != 4 {
		t.Fatalf("first push: %d layers, %d blob PUTs (want 2 layers + index + config): %+v", res.Layers, puts, res)
	}
	want := treeSums(t, src)

	dst, _ := mount.New(filepath.Join(work, "dst"), mount.Options{})
	os.MkdirAll(dst.Dir, 0o755)
	pres, err := Pull(ctx, dst, s, "k1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pres.FilesWritten != res.Files {
		t.Fatalf("pull wrote %d files, snapshot has %d", pres.FilesWritten, res.Files)
	}
	diffSums(t, want, treeSums(t, dst))
	// The same content from the restored dir under a new key: a manifest,
	// no blob.
	res3, err := Push(ctx, dst, s, "k1-copy", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reg.Requests(t, "PUT", "/blobs/uploads/")); n != puts || res3.Layers != 0 || res3.DataBytes != 0 {
		t.Fatalf("push of restored content: %d new blob PUTs, %+v", n-puts, res3)
	}

	// Force Go's daily trim: trim.txt 2 days old. Entries restored with
	// mtime now-2h survive it; the next build compiles nothing.
	twoDays := time.Now().Add(-48 * time.Hour).Unix()
	if err := os.WriteFile(filepath.Join(dst.CacheDir(mount.GoCache), "trim.txt"), []byte(itoa(twoDays)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, out := testenv.GoBuild(t, testenv.RealCacheModule(), offlineEnv(dst), "."); n != 0 {
		t.Fatalf("build after restore compiled %d packages:\n%s", n, tailOf(out))
	}
	if tb, _ := os.ReadFile(filepath.Join(dst.CacheDir(mount.GoCache), "trim.txt")); string(tb) == itoa(twoDays)+"\n" {
		t.Fatal("go did not run its trim (trim.txt unchanged): the test proves nothing")
	}

	// Unchanged re-push: no blob upload at all.
	res2, err := Push(ctx, src, s, "k1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reg.Requests(t, "PUT", "/blobs/uploads/")); !res2.Unchanged || n != puts {
		t.Fatalf("unchanged re-push: %d new blob PUTs, %+v", n-puts, res2)
	}
	// Delta: build a second real program into the source cache.
	first, err := FetchSnapshot(ctx, s, "k1")
	if err != nil {
		t.Fatal(err)
	}
	srcEnv := testenv.GoEnv{ModCache: src.CacheDir(mount.GoModCache), Cache: src.CacheDir(mount.GoCache)}
	prog2 := secondProgram(t)
	if n, _ := testenv.GoBuild(t, prog2, srcEnv, "."); n == 0 {
		t.Fatal("second program compiled nothing: no delta to test")
	}
	changed := changedFiles(t, src, first)
	zsize := zstdSize(t, src.Dir, changed)
	dres, err := Push(ctx, src, s, "k1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if dres.Base != first.Digest.String() || dres.Layers == 0 {
		t.Fatalf("delta push: %+v", dres)
	}
	if float64(dres.DataBytes) > 1.1*float64(zsize) {
		t.Fatalf("delta push uploaded %d data bytes; new+changed entries are %d bytes as tar|zstd (limit 1.1x)", dres.DataBytes, zsize)
	}
	t.Logf("delta: %d files changed, %d bytes tar|zstd, %d bytes uploaded in %d layers", len(changed), zsize, dres.DataBytes, dres.Layers)

	// A pull into the dir holding the first snapshot fetches only the new
	// layers.
	second, err := FetchSnapshot(ctx, s, "k1")
	if err != nil {
		t.Fatal(err)
	}
	// The dir must hold exactly the first snapshot (dst was built in since,
	// which rewrote an -a entry), so restore it by digest into a fresh dir.
	third, _ := mount.New(filepath.Join(work, "third"), mount.Options{})
	os.MkdirAll(third.Dir, 0o755)
	if r, err := Pull(ctx, third, s, first.Digest.String(), Options{}); err != nil || r.Resolved != "digest" {
		t.Fatalf("pull by digest: %v %+v", err, r)
	}
	before := blobGets(t, reg)
	dpres, err := Pull(ctx, third, s, "k1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := blobGets(t, reg)[len(before):]
	newLayers := map[string]bool{}
	for _, li := range second.Config.Layers {
		isOld := false
		for _, ol := range first.Config.Layers {
			isOld = isOld || ol.Digest == li.Digest
		}
		if !isOld {
			newLayers[li.Digest.String()] = true
		}
	}
	for _, g := range got {
		for _, li := range first.Config.Layers {
			if strings.Contains(g, li.Digest.String()) {
				t.Errorf("pull fetched old layer %s", li.Digest)
			}
		}
	}
	if dpres.Layers != len(newLayers) {
		t.Fatalf("delta pull fetched %d layers, %d are new", dpres.Layers, len(newLayers))
	}
	dstEnv := offlineEnv(third)
	if n, out := testenv.GoBuild(t, prog2, dstEnv, "."); n != 0 {
		t.Fatalf("build of the second program after the delta pull compiled %d packages:\n%s", n, tailOf(out))
	}
}

func blobGets(t *testing.T, reg *testenv.Registry) []string {
	return reg.Requests(t, "GET", "/blobs/sha256:")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func tailOf(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// changedFiles lists files of l (relative to l.Dir) that snapshot base does
// not hold with the same content.
func changedFiles(t *testing.T, l mount.Layout, base *Snapshot) []string {
	t.Helper()
	have := map[string]string{}
	for _, e := range base.Index.Entries {
		have[e.TarName()] = e.SHA256
	}
	var out []string
	for k, v := range treeSums(t, l) {
		f := strings.Fields(v)
		if f[0] != "file" {
			continue
		}
		if have[k] != f[2] {
			out = append(out, k)
		}
	}
	return out
}

// zstdSize measures the independent baseline: tar of the files piped
// through the zstd command at its default level.
func zstdSize(t *testing.T, dir string, files []string) int64 {
	t.Helper()
	return zstdSizeAt(t, dir, files, "-3")
}

// zstdSizeAt is zstdSize at a given zstd level flag ("-1").
func zstdSizeAt(t *testing.T, dir string, files []string, level string) int64 {
	t.Helper()
	testenv.RequireTool(t, "zstd")
	cmd := exec.Command("sh", "-c", "tar -cf - --no-recursion -T - | zstd -q "+level+" -c | wc -c")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(strings.Join(files, "\n") + "\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tar|zstd: %v: %s", err, errb.String())
	}
	n, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSkopeoCrossCheck: an independent client sees the artifact type, copies
// the snapshot to an OCI layout, and melcache restores from that copy.
func TestSkopeoCrossCheck(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (registry, skopeo, CLI)")
	skopeo := testenv.RequireTool(t, "skopeo")
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	src := makeCache(t, testenv.TempDir(t))
	rs := registryStore(t, reg, "snap")
	if _, err := Push(ctx, src, rs, "t1", Options{}); err != nil {
		t.Fatal(err)
	}
	// A delta: the manifest then leads with an index chain of two
	// documents, which skopeo copies like any layers.
	writeT(t, filepath.Join(src.CacheDir(mount.GoCache), "ee", "delta"), []byte("a delta file"), 0o644)
	if _, err := Push(ctx, src, rs, "t1", Options{}); err != nil {
		t.Fatal(err)
	}
	if snap, err := FetchSnapshot(ctx, rs, "t1"); err != nil || len(snap.Config.Indexes) != 2 {
		t.Fatalf("delta snapshot: %v, %+v", err, snap)
	}
	out, err := exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+reg.Host+"/snap:t1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"artifactType":"`+ArtifactType+`"`) {
		t.Fatalf("skopeo inspect --raw does not show the artifact type:\n%s", out)
	}
	layout := filepath.Join(testenv.TempDir(t), "layout")
	out, err = exec.Command(skopeo, "copy", "--src-tls-verify=false", "docker://"+reg.Host+"/snap:t1", "oci:"+layout+":t1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	ref, err := ParseRef("oci:"+layout+":t1", RefOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, tag, err := OpenStore(ctx, ref, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	if _, err := Pull(ctx, dst, s, tag, Options{}); err != nil {
		t.Fatal(err)
	}
	diffSums(t, treeSums(t, src), treeSums(t, dst))
	tarLists(t, layout, s, tag)

	// And through the CLI, as a user would.
	bin := testenv.MelcacheBinary(t)
	cli := newLayout(t)
	out, err = exec.Command(bin, "pull", "--dir", cli.Dir, "oci:"+layout+":t1").CombinedOutput()
	if err != nil {
		t.Fatalf("melcache pull oci:%s:t1: %v\n%s", layout, err, out)
	}
	diffSums(t, treeSums(t, src), treeSums(t, cli))
}

// tarLists checks that plain zstd and tar read every data layer of the
// snapshot in an OCI layout, listing as many members as the config says.
func tarLists(t *testing.T, layout string, s Store, tag string) {
	t.Helper()
	zstd := testenv.RequireTool(t, "zstd")
	snap, err := FetchSnapshot(context.Background(), s, tag)
	if err != nil {
		t.Fatal(err)
	}
	for i, li := range snap.Config.Layers {
		blob := filepath.Join(layout, "blobs", "sha256", snap.DataLayer(i).Digest.Hex)
		cmd := exec.Command("sh", "-c", `"$0" -dc "$1" | tar -tf -`, zstd, blob)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("zstd -dc | tar -t of layer %d: %v\n%s", i, err, out)
		}
		if n := strings.Count(string(out), "\n"); n != li.Files {
			t.Fatalf("tar lists %d members in layer %d, the config says %d:\n%s", n, i, li.Files, out)
		}
	}
}
