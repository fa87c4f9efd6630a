package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/oci"
)

// cli runs the melcache binary testscript installed in PATH with extra
// environment and returns its stdout; it fails the test on a non-zero exit.
func cli(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := cliCode(t, env, args...)
	if code != 0 {
		t.Fatalf("melcache %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func cliCode(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("melcache", args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("melcache %v: %v", args, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// fakeCache writes a small but well-formed cache directory: GOCACHE -d
// files named by their SHA-256 with -a entries, and a read-only extracted
// module tree, as cmd/melcache/testdata/script/snapshot_embedded.txtar's
// mkcache.sh does. seed varies the content.
func fakeCache(t *testing.T, dir string, seed int) {
	t.Helper()
	gc := filepath.Join(dir, "gocache")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(gc, 0o755))
	must(os.WriteFile(filepath.Join(gc, "README"), []byte("This directory holds cached build artifacts from the Go build system.\n"), 0o644))
	for i := 1; i <= 15; i++ {
		body := fmt.Sprintf("object %d %d\n", seed, i)
		h := sha256.Sum256([]byte(body))
		hx := hex.EncodeToString(h[:])
		must(os.MkdirAll(filepath.Join(gc, hx[:2]), 0o755))
		must(os.WriteFile(filepath.Join(gc, hx[:2], hx+"-d"), []byte(body), 0o644))
		a := sha256.Sum256([]byte(fmt.Sprintf("action %d %d", seed, i)))
		ax := hex.EncodeToString(a[:])
		must(os.MkdirAll(filepath.Join(gc, ax[:2]), 0o755))
		must(os.WriteFile(filepath.Join(gc, ax[:2], ax+"-a"), []byte(fmt.Sprintf("v1 %s %s\n", ax, hx)), 0o644))
	}
	dl := filepath.Join(dir, "gomodcache/cache/download/example.com/m/@v")
	must(os.MkdirAll(dl, 0o755))
	f, err := os.OpenFile(filepath.Join(dl, "list"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	must(err)
	fmt.Fprintf(f, "v1.0.%d\n", seed)
	must(f.Close())
	tree := filepath.Join(dir, fmt.Sprintf("gomodcache/example.com/m@v1.0.%d", seed))
	must(os.MkdirAll(tree, 0o755))
	must(os.WriteFile(filepath.Join(tree, "m.go"), []byte(fmt.Sprintf("package m // %d\n", seed)), 0o444))
	must(os.Chmod(tree, 0o555))
}

// blobsOf lists the blobs a tag's manifest needs: the manifest, its config
// and every layer.
func blobsOf(t *testing.T, s oci.Store, tag string) (v1.Hash, []v1.Hash) {
	t.Helper()
	snap, err := oci.FetchSnapshot(context.Background(), s, tag)
	if err != nil {
		t.Fatalf("%s: %v", tag, err)
	}
	out := []v1.Hash{snap.Digest, snap.Manifest.Config.Digest}
	for _, l := range snap.Manifest.Layers {
		out = append(out, l.Digest)
	}
	return snap.Digest, out
}

// gcScenario pushes three snapshots to ref (a repository, "" for the
// embedded store), oldest first: "old" (unrelated content), "a", and "b",
// a delta of "a" that keeps a's layers. gc --keep-last 1 must delete "old"
// and "a", keep "b", and leave every blob b needs, including the layers it
// shares with a; a pull of "b" must still give b's content.
func gcScenario(t *testing.T, env []string, ref string, open func() oci.Store) (deleted map[v1.Hash]bool, kept []v1.Hash) {
	work := t.TempDir()
	at := func(tag string) string {
		if ref == "" {
			return ""
		}
		return ref + ":" + tag
	}
	key := func(tag string) []string {
		if ref == "" {
			return []string{"--key", tag}
		}
		return []string{at(tag)}
	}
	src3, src1, dst := filepath.Join(work, "src3"), filepath.Join(work, "src1"), filepath.Join(work, "dst")
	fakeCache(t, src3, 3)
	fakeCache(t, src1, 1)
	cli(t, env, append([]string{"push", "-q", "--dir", src3}, key("old")...)...)
	// The created annotation has one-second resolution; gc orders by it.
	time.Sleep(1100 * time.Millisecond)
	cli(t, env, append([]string{"push", "-q", "--dir", src1}, key("a")...)...)
	time.Sleep(1100 * time.Millisecond)
	cli(t, env, append([]string{"pull", "-q", "--dir", dst}, key("a")...)...)
	fakeCache(t, dst, 2)
	out := cli(t, env, append([]string{"push", "--json", "--dir", dst}, key("b")...)...)
	if !strings.Contains(out, `"base": "sha256:`) {
		t.Fatalf("push of b was not a delta of a:\n%s", out)
	}
	s := open()
	da, blobsA := blobsOf(t, s, "a")
	dold, blobsOld := blobsOf(t, s, "old")
	db, blobsB := blobsOf(t, s, "b")
	shared := 0
	for _, b := range blobsA {
		if slices.Contains(blobsB, b) {
			shared++
		}
	}
	if shared == 0 {
		t.Fatalf("b shares no blob with a: the scenario tests nothing")
	}

	repo := ref
	var gcArgs []string
	if repo != "" {
		gcArgs = []string{repo}
	}
	// A dry run changes nothing.
	out, errOut, code := cliCode(t, env, append([]string{"gc", "--keep-last", "1", "--dry-run"}, gcArgs...)...)
	if code != exitCheck {
		t.Fatalf("gc --dry-run with snapshots to delete: exit %d, want %d (work found)\n%s%s", code, exitCheck, out, errOut)
	}
	for _, want := range []string{"would delete  a ", "would delete  old ", "kept          b "} {
		if !strings.Contains(out, want) {
			t.Errorf("gc --dry-run output lacks %q:\n%s", want, out)
		}
	}
	if tags, _ := s.Tags(context.Background()); len(tags) != 3 {
		t.Fatalf("after a dry run tags are %v, want all three", tags)
	}

	out = cli(t, env, append([]string{"gc", "--keep-last", "1"}, gcArgs...)...)
	t.Logf("gc:\n%s", out)
	for _, want := range []string{
		"kept     b ",
		"one of the 1 newest",
		fmt.Sprintf("deleted  a  "),
		fmt.Sprintf("%d of its %d blobs stay: kept snapshots use them", shared, len(blobsA)-1), // blobsA includes the manifest
		"deleted  old ",
		"deleted 2 snapshots, kept 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("gc output lacks %q", want)
		}
	}
	tags, err := s.Tags(context.Background())
	if err != nil || !slices.Equal(tags, []string{"b"}) {
		t.Fatalf("tags after gc: %v %v, want [b]", tags, err)
	}
	for _, d := range []v1.Hash{da, dold} {
		if _, _, _, err := s.GetManifest(context.Background(), d.String()); err == nil {
			t.Errorf("manifest %s still readable after gc", d)
		}
	}
	if _, _, _, err := s.GetManifest(context.Background(), db.String()); err != nil {
		t.Errorf("kept manifest %s: %v", db, err)
	}
	// The kept snapshot still restores, byte for byte.
	fresh := filepath.Join(work, "fresh")
	cli(t, env, append([]string{"pull", "-q", "--dir", fresh}, key("b")...)...)
	if a, b := listFiles(t, filepath.Join(dst, "gomodcache")), listFiles(t, filepath.Join(fresh, "gomodcache")); !slices.Equal(a, b) {
		t.Errorf("pulled gomodcache differs from the pushed one:\n%v\n%v", a, b)
	}
	if a, b := listFiles(t, filepath.Join(dst, "gocache")), listFiles(t, filepath.Join(fresh, "gocache")); !slices.Equal(a, b) {
		t.Errorf("pulled gocache differs from the pushed one:\n%v\n%v", a, b)
	}

	deleted = map[v1.Hash]bool{}
	for _, b := range append(blobsA, blobsOld...) {
		if !slices.Contains(blobsB, b) {
			deleted[b] = true
		}
	}
	return deleted, blobsB
}

// listFiles lists the regular files under root with their content hash
// (trim.txt, rewritten by every pull, left out).
func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() && fi.Name() != "trim.txt" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			out = append(out, fmt.Sprintf("%s %x", p[len(root):], h[:8]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestGCEmbedded: gc in the embedded store deletes exactly the snapshots no
// rule keeps and removes exactly their blobs that the kept snapshot does not
// list; the kept one still pulls.
func TestGCEmbedded(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	xdg := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + xdg}
	storeDir := filepath.Join(xdg, "melcache", "store")
	open := func() oci.Store { return oci.NewEmbeddedStore(storeDir) }
	deleted, kept := gcScenario(t, env, "", open)
	blobDir := filepath.Join(storeDir, "blobs", "sha256")
	for d := range deleted {
		if _, err := os.Stat(filepath.Join(blobDir, d.Hex)); !os.IsNotExist(err) {
			t.Errorf("blob %s of a deleted snapshot is still there (%v)", d, err)
		}
	}
	ents, err := os.ReadDir(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range ents {
		have = append(have, e.Name())
	}
	var want []string
	for _, d := range kept {
		want = append(want, d.Hex)
	}
	sort.Strings(have)
	sort.Strings(want)
	want = slices.Compact(want)
	if !slices.Equal(have, want) {
		t.Errorf("blobs after gc:\n%v\nwant exactly the kept snapshot's:\n%v", have, want)
	}
	if n := len(deleted); n == 0 {
		t.Fatal("no blob was expected to go: the scenario tests nothing")
	}
	// A second gc finds nothing to do.
	out := cli(t, env, "gc", "--keep-last", "1")
	if !strings.Contains(out, "deleted 0 snapshots, kept 1; removed 0 unreferenced blobs") {
		t.Errorf("second gc:\n%s", out)
	}
}

// TestGCRegistry: the same against the real docker-registry (deletes
// enabled by testenv): the deleted tags and manifests are gone, the kept
// snapshot pulls.
func TestGCRegistry(t *testing.T) {
	testenv.SkipShort(t, "registry-heavy")
	t.Parallel() // its own registry and XDG_CACHE_HOME
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	repo := reg.Host + "/gc"
	open := func() oci.Store {
		ref, err := oci.ParseRef(repo, oci.RefOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := oci.OpenStore(context.Background(), ref, oci.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	gcScenario(t, env, repo, open)
	if n := len(reg.Requests(t, "DELETE", "/manifests/sha256:")); n != 2 {
		t.Errorf("registry saw %d manifest DELETEs, want 2", n)
	}
}

// TestGCUsage: no rule, a tag, or a bad duration are usage errors (exit 2).
func TestGCUsage(t *testing.T) {
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	for _, args := range [][]string{
		{"gc"},
		{"gc", "--max-age", "soon"},
		{"gc", "--keep-last", "1", "oci:" + t.TempDir() + ":tag"},
	} {
		_, errOut, code := cliCode(t, env, args...)
		if code != 2 || !strings.HasPrefix(errOut, "melcache: ") {
			t.Errorf("melcache %v: exit %d, stderr %q; want 2 and one clear line", args, code, errOut)
		}
	}
}

// TestRetentionHint: a refused DELETE names the registry's own retention
// setting, per host.
func TestRetentionHint(t *testing.T) {
	for store, want := range map[string]string{
		"ghcr.io/acme/cache": "delete-package-versions",
		"123456789012.dkr.ecr.us-east-1.amazonaws.com/cache": "lifecycle policy",
		"europe-docker.pkg.dev/p/r/cache":                    "cleanup policies",
		"index.docker.io/acme/cache":                         "Docker Hub",
		"acme.azurecr.io/cache":                              "acr purge",
		"quay.io/acme/cache":                                 "auto-prune",
		"registry.example.com:5000/cache":                    "storage.delete.enabled",
	} {
		if got := oci.RetentionHint(store); !strings.Contains(got, want) {
			t.Errorf("RetentionHint(%q) = %q, want it to mention %q", store, got, want)
		}
	}
}
