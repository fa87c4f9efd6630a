package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
)

func TestLayoutStoreContract(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	s := NewLayoutStore(dir)
	testStoreContract(t, s, false)
	// The layout is a valid OCI image layout.
	b, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil || !strings.Contains(string(b), `"imageLayoutVersion":"1.0.0"`) {
		t.Errorf("oci-layout = %q, %v", b, err)
	}
	checkIndexValid(t, dir)
	// No temp files are left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
}

func TestEmbeddedStoreContract(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "melcache", "store")
	s := NewEmbeddedStore(dir)
	// An embedded store that was never written reads as empty.
	tags, err := s.Tags(context.Background())
	if err != nil || len(tags) != 0 {
		t.Fatalf("Tags of a fresh embedded store = %v, %v", tags, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reading created the store dir: %v", err)
	}
	testStoreContract(t, s, false)
}

func TestLayoutMissingIsNotFound(t *testing.T) {
	s := NewLayoutStore(filepath.Join(t.TempDir(), "nope"))
	_, err := s.Tags(context.Background())
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Tags of a missing layout = %v, want ErrNotFound naming the path", err)
	}
}

// checkIndexValid parses index.json and checks every manifest it names, and
// every blob those manifests name, is on disk.
func checkIndexValid(t *testing.T, dir string) *layoutIndex {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx layoutIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("index.json is not valid JSON: %v\n%s", err, b)
	}
	for _, m := range idx.Manifests {
		mb, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", m.Digest.Hex))
		if err != nil {
			t.Fatalf("index.json names missing manifest %s: %v", m.Digest, err)
		}
		var mf struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
		json.Unmarshal(mb, &mf)
		for _, d := range append([]struct{ Digest string }{mf.Config}, mf.Layers...) {
			if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:"))); err != nil {
				t.Fatalf("manifest %s names missing blob %s", m.Digest, d.Digest)
			}
		}
	}
	return &idx
}

func TestLayoutRefusesDigestMismatch(t *testing.T) {
	dir := t.TempDir()
	s := NewLayoutStore(dir)
	good, bad := randomBlob(t, 1000), randomBlob(t, 1000)
	_, err := s.WriteBlob(context.Background(), good.d, 1000, bad.opener(nil))
	if err == nil || !strings.Contains(err.Error(), "mismatch") || !strings.Contains(err.Error(), good.d.String()) {
		t.Fatalf("WriteBlob with wrong content = %v, want a mismatch error naming the digest", err)
	}
	if ok, _ := s.HasBlob(context.Background(), good.d); ok {
		t.Error("mismatched blob was stored")
	}
	// Wrong size with right content is refused too.
	if _, err := s.WriteBlob(context.Background(), good.d, 999, good.opener(nil)); err == nil {
		t.Error("WriteBlob with wrong size succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(ents) != 0 {
		t.Errorf("blobs left after refused writes: %v", ents)
	}
}

func TestLayoutRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("mine"), 0o644)
	s := NewLayoutStore(dir)
	b := randomBlob(t, 10)
	_, err := s.WriteBlob(context.Background(), b.d, 10, b.opener(nil))
	if err == nil || !strings.Contains(err.Error(), "not an OCI image layout") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("WriteBlob into a foreign dir = %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("foreign dir was changed: %v", ents)
	}
}

// TestLayoutConcurrentWriters runs writers with their own store values (so
// their own flock file descriptions, as separate processes have) against one
// layout, and a writer in a child process: every tag lands and index.json
// stays valid.
func TestLayoutConcurrentWriters(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	dir := t.TempDir()
	const writers, perWriter = 4, 10
	shared := randomBlob(t, 4096)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := NewLayoutStore(dir)
			for i := range perWriter {
				a := newTestArtifact(t, shared, newTestBlob(t, fmt.Appendf(nil, "w%d-i%d", w, i)))
				for _, b := range append([]testBlob{a.config}, a.layers...) {
					if _, err := s.WriteBlob(context.Background(), b.d, int64(len(b.data)), b.opener(nil)); err != nil {
						errs <- err
						return
					}
				}
				if _, err := s.PutManifest(context.Background(), fmt.Sprintf("w%d-%d", w, i), testManifestType, a.manifest); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// A second process writing at the same time.
	cmd := exec.Command(os.Args[0], "-test.run=^TestLayoutHelperProcess$")
	cmd.Env = append(os.Environ(), "MELCACHE_LAYOUT_HELPER="+dir)
	out, err := cmd.CombinedOutput()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	idx := checkIndexValid(t, dir)
	tags, err := NewLayoutStore(dir).Tags(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := writers*perWriter + helperWrites
	if len(tags) != want || len(idx.Manifests) != want {
		t.Errorf("got %d tags, %d index entries; want %d", len(tags), len(idx.Manifests), want)
	}
	if !slices.Contains(tags, "proc-0") {
		t.Errorf("tags lack the child process's: %v", tags)
	}
}

const helperWrites = 10

func TestLayoutHelperProcess(t *testing.T) {
	dir := os.Getenv("MELCACHE_LAYOUT_HELPER")
	if dir == "" {
		return // only runs as TestLayoutConcurrentWriters's child
	}
	s := NewLayoutStore(dir)
	for i := range helperWrites {
		a := newTestArtifact(t, newTestBlob(t, fmt.Appendf(nil, "proc-%d", i)))
		a.push(t, s, fmt.Sprintf("proc-%d", i))
	}
}

func TestLayoutUnreferencedBlobs(t *testing.T) {
	dir := t.TempDir()
	s := NewLayoutStore(dir)
	a := newTestArtifact(t, randomBlob(t, 100))
	b := newTestArtifact(t, randomBlob(t, 100))
	a.push(t, s, "a")
	db, _ := b.push(t, s, "b")
	if got, err := s.UnreferencedBlobs(context.Background()); err != nil || len(got) != 0 {
		t.Fatalf("UnreferencedBlobs with all live = %v, %v", got, err)
	}
	if err := s.DeleteManifest(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	got, err := s.UnreferencedBlobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join("blobs", "sha256", db.Hex), filepath.Join("blobs", "sha256", b.layers[0].d.Hex)}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) { // the config is shared with a
		t.Errorf("UnreferencedBlobs = %v, want %v", got, want)
	}
}

// TestLayoutSkopeo cross-checks with skopeo, an independent reader and
// writer of OCI layouts: it reads what we wrote, copies it to a layout we
// then read, and the tags match.
func TestLayoutSkopeo(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	skopeo := testenv.RequireTool(t, "skopeo")
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ours")
	s := NewLayoutStore(dir)
	a := newTestArtifact(t, randomBlob(t, 2048))
	d, _ := a.push(t, s, "snap-1")

	out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+dir+":snap-1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect --raw: %v\n%s", err, out)
	}
	if !bytes.Equal(bytes.TrimSpace(out), a.manifest) {
		t.Errorf("skopeo read a different manifest:\n%s\nwant\n%s", out, a.manifest)
	}
	if !strings.Contains(string(out), testArtifactType) {
		t.Errorf("artifactType not visible to skopeo: %s", out)
	}

	// skopeo writes a layout (tag in ref.name) that we read back.
	dir2 := filepath.Join(t.TempDir(), "theirs")
	out, err = exec.Command(skopeo, "copy", "--quiet", "oci:"+dir+":snap-1", "oci:"+dir2+":copied").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	s2 := NewLayoutStore(dir2)
	tags, err := s2.Tags(ctx)
	if err != nil || !slices.Equal(tags, []string{"copied"}) {
		t.Fatalf("tags of skopeo's layout = %v, %v", tags, err)
	}
	_, mb, d2, err := s2.GetManifest(ctx, "copied")
	if err != nil || d2 != d || !bytes.Equal(mb, a.manifest) {
		t.Fatalf("manifest of skopeo's copy = %s, %v; want %s unchanged", d2, err, d)
	}
	if got := readAll(t, s2, a.layers[0].d); !bytes.Equal(got, a.layers[0].data) {
		t.Error("layer read from skopeo's layout differs")
	}
	// We add a tag to skopeo's layout; skopeo still reads both.
	if _, err := s2.PutManifest(ctx, "ours-too", testManifestType, mb); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"copied", "ours-too"} {
		if out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+dir2+":"+tag).CombinedOutput(); err != nil {
			t.Errorf("skopeo inspect %s after our write: %v\n%s", tag, err, out)
		}
	}
	_ = io.Discard
}

// TestLayoutSurvivesKill kills a process pushing into a layout at arbitrary
// points (blob writes, fsyncs, renames, index updates) several times: each
// time index.json is valid JSON naming only blobs that are on disk, and the
// next push (in a new process, so no stale lock) works.
func TestLayoutSurvivesKill(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	dir := t.TempDir()
	const rounds = 4
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLayoutKillHelperProcess$")
		cmd.Env = append(os.Environ(), "MELCACHE_KILL_HELPER="+dir, fmt.Sprintf("MELCACHE_KILL_ROUND=%d", round))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Wait until this round's child has tagged a few artifacts (a
		// condition, not a time), then kill it wherever it is.
		want := round + 2
		for {
			if n := countTagged(dir, fmt.Sprintf("r%d-", round)); n >= want {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("helper exited before being killed: %v", err)
			default:
			}
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-done
		checkIndexValid(t, dir)
	}
	// The layout still takes a push and reads back.
	s := NewLayoutStore(dir)
	a := newTestArtifact(t, randomBlob(t, 1000))
	d, _ := a.push(t, s, "after-kills")
	if _, _, got, err := s.GetManifest(context.Background(), "after-kills"); err != nil || got != d {
		t.Fatalf("push after kills: %s, %v", got, err)
	}
	checkIndexValid(t, dir)
	tags, _ := s.Tags(context.Background())
	if len(tags) < 2+3+4+5+1 {
		t.Errorf("%d tags after the kills, want at least %d", len(tags), 2+3+4+5+1)
	}
}

func countTagged(dir, prefix string) int {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return 0
	}
	var idx layoutIndex
	if json.Unmarshal(b, &idx) != nil {
		return 0
	}
	n := 0
	for _, m := range idx.Manifests {
		if strings.HasPrefix(m.Annotations[RefNameAnnotation], prefix) {
			n++
		}
	}
	return n
}

func TestLayoutKillHelperProcess(t *testing.T) {
	dir := os.Getenv("MELCACHE_KILL_HELPER")
	if dir == "" {
		return // only runs as TestLayoutSurvivesKill's child
	}
	s := NewLayoutStore(dir)
	for i := 0; ; i++ {
		a := newTestArtifact(t, randomBlob(t, 256<<10), randomBlob(t, 1000))
		a.push(t, s, fmt.Sprintf("r%s-%d", os.Getenv("MELCACHE_KILL_ROUND"), i))
	}
}

func TestLayoutRefusesManifestWithMissingBlobs(t *testing.T) {
	dir := t.TempDir()
	s := NewLayoutStore(dir)
	a := newTestArtifact(t, randomBlob(t, 100))
	// Only the config is written; the layer is missing.
	if _, err := s.WriteBlob(context.Background(), a.config.d, int64(len(a.config.data)), a.config.opener(nil)); err != nil {
		t.Fatal(err)
	}
	_, err := s.PutManifest(context.Background(), "t", testManifestType, a.manifest)
	if err == nil || !strings.Contains(err.Error(), a.layers[0].d.String()) {
		t.Fatalf("PutManifest with a missing layer = %v, want an error naming it", err)
	}
	if tags, _ := s.Tags(context.Background()); len(tags) != 0 {
		t.Errorf("tags after a refused manifest: %v", tags)
	}
	if _, err := s.PutManifest(context.Background(), "t", testManifestType, []byte("not json")); err == nil {
		t.Error("PutManifest of invalid JSON succeeded")
	}
}

// TestLayoutCorruptIndexIsLeftAlone: a corrupt index.json is reported with
// its path and never overwritten (that would drop every tag in it).
func TestLayoutCorruptIndexIsLeftAlone(t *testing.T) {
	dir := t.TempDir()
	s := NewLayoutStore(dir)
	newTestArtifact(t, randomBlob(t, 10)).push(t, s, "a")
	idxPath := filepath.Join(dir, "index.json")
	garbage := []byte(`{"schemaVersion":2,"manifests":[{"digest":`)
	os.WriteFile(idxPath, garbage, 0o644)
	a := newTestArtifact(t, randomBlob(t, 10))
	for _, b := range append([]testBlob{a.config}, a.layers...) {
		s.WriteBlob(context.Background(), b.d, int64(len(b.data)), b.opener(nil))
	}
	_, err := s.PutManifest(context.Background(), "b", testManifestType, a.manifest)
	if err == nil || !strings.Contains(err.Error(), idxPath) {
		t.Fatalf("PutManifest over a corrupt index = %v, want an error naming %s", err, idxPath)
	}
	if _, err := s.Tags(context.Background()); err == nil || !strings.Contains(err.Error(), idxPath) {
		t.Errorf("Tags of a corrupt index = %v", err)
	}
	if b, _ := os.ReadFile(idxPath); !bytes.Equal(b, garbage) {
		t.Error("corrupt index.json was rewritten")
	}
}

// Several processes creating the same new layout at once all adopt it: the
// oci-layout file another one writes between the existence check and the
// directory listing must not read as "not an OCI image layout" (seen as a
// failed push in TestConcurrentPullsAndPushes).
func TestLayoutConcurrentCreation(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores) and slow: overlaps with the other slow tests
	root := t.TempDir()
	// Each layout is a new race of the same eight creators: -short runs
	// fewer of them, the full suite 300.
	layouts := 300
	if testing.Short() {
		layouts = 50
	}
	for i := range layouts {
		dir := filepath.Join(root, fmt.Sprint(i))
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := NewLayoutStore(dir).ensureLayout(); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("layout %d: %v", i, err)
		}
	}
}
