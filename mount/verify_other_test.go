package mount

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, body := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyFetchCache(t *testing.T) {
	l, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := "source tarball bytes"
	s256, s512 := sha256.Sum256([]byte(src)), sha512.Sum512([]byte(src))
	good256 := "sha256:" + hex.EncodeToString(s256[:])
	good512 := "sha512:" + hex.EncodeToString(s512[:])
	bad := "sha256:" + strings.Repeat("ab", 32)
	// The fetch cache has no directory: prepare creates only the state.
	if r, err := l.Prepare(context.Background(), PrepareOptions{Caches: []Cache{FetchCache}}); err != nil || !slices.Equal(r.Created, []string{l.State}) {
		t.Fatalf("prepare --cache fetch: %+v %v", r, err)
	}
	writeFiles(t, l.Dir, map[string]string{
		good256: src, good512: src, bad: src,
		"sha256:NOTHEX":   "not the fetch cache's",
		"APKINDEX.tar.gz": "melange's own files",
	})
	before := treeState(t, l.Dir)
	res := verifyOnly(t, l, false)
	if len(res.Problems) != 1 || res.Problems[0].Path != filepath.Join(l.Dir, bad) || res.Problems[0].Cache != FetchCache {
		t.Fatalf("problems %+v, want one on %s", res.Problems, bad)
	}
	if len(res.Caches) != 1 || res.Caches[0] != (CacheCheck{Name: FetchCache, Checked: 3}) {
		t.Errorf("caches %+v", res.Caches)
	}
	// The same check on a tree outside a layout, as a restore's staging
	// dir would hold it.
	stage := t.TempDir()
	writeFiles(t, stage, map[string]string{good512: src, bad: "other bytes", "README": "not the fetch cache's"})
	cc, probs, err := VerifyTree(context.Background(), FetchCache, stage)
	if err != nil || cc != (CacheCheck{Name: FetchCache, Checked: 2}) || len(probs) != 1 || probs[0].Path != filepath.Join(stage, bad) {
		t.Errorf("VerifyTree(staging): %+v %+v %v", cc, probs, err)
	}
	if _, _, err := VerifyTree(context.Background(), GoCache, stage); err == nil {
		t.Error("VerifyTree(gocache) should refuse: the Go caches have their own checks")
	}
	if d := diffStates(before, treeState(t, l.Dir)); len(d) > 0 {
		t.Errorf("verify without --repair changed %v", d)
	}
	verifyOnly(t, l, true)
	after := treeState(t, l.Dir)
	delete(before, bad)
	if d := diffStates(before, after); len(d) > 0 {
		t.Errorf("repair should remove only %s: %v", bad, d)
	}

	// clean --cache fetch removes the fetch cache's files and nothing else.
	res2, err := l.Clean(context.Background(), CleanOptions{Caches: []Cache{FetchCache}})
	if err != nil || res2.Entries != 2 {
		t.Fatalf("clean fetch: %+v %v", res2, err)
	}
	left, _ := os.ReadDir(l.Dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{StateName, "APKINDEX.tar.gz", "sha256:NOTHEX"}) {
		t.Errorf("after clean: %v", names)
	}
}

func TestVerifyMaven(t *testing.T) {
	l, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	repo := l.CacheDir(MavenCache)
	v := "org/example/lib/1.0/"
	jar, pom := "jar bytes", "<project/>"
	writeFiles(t, repo, map[string]string{
		v + "lib-1.0.jar":                            jar,
		v + "lib-1.0.jar.sha1":                       sum(jar),
		v + "lib-1.0.pom":                            pom,
		v + "lib-1.0.pom.sha1":                       strings.ToUpper(sum(pom)) + "  lib-1.0.pom\n", // old tools add the name
		v + "_remote.repositories":                   "volatile",
		v + "lib-1.0-sources.jar":                    "installed locally, no checksum",
		"org/example/lib/maven-metadata-central.xml": "<metadata/>",
	})
	res := verifyOnly(t, l, false)
	want := CacheCheck{Name: MavenCache, Checked: 4, Unchecked: 1, Volatile: 2}
	if !res.OK() || len(res.Caches) != 1 || res.Caches[0] != want {
		t.Fatalf("problems %v, caches %+v, want %+v", res.Problems, res.Caches, want)
	}
	if len(res.Unverified) != 1 || !strings.HasSuffix(res.Unverified[0], "lib-1.0-sources.jar") {
		t.Errorf("unverified %v", res.Unverified)
	}
	writeFiles(t, repo, map[string]string{v + "lib-1.0.jar": "jar bytez"})
	res = verifyOnly(t, l, true)
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Reason, "does not match its .sha1") || !res.Problems[0].Repaired {
		t.Fatalf("tampered jar: %+v", res.Problems)
	}
	for _, f := range []string{"lib-1.0.jar", "lib-1.0.jar.sha1"} {
		if _, err := os.Lstat(filepath.Join(repo, v, f)); !os.IsNotExist(err) {
			t.Errorf("repair kept %s: %v", f, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(repo, v, "lib-1.0.pom")); err != nil {
		t.Errorf("repair removed the good pom: %v", err)
	}
}

func TestVerifyUncheckableCaches(t *testing.T) {
	l, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, l.CacheDir(UVCache), map[string]string{"archive-v0/x/RECORD": "x", ".lock": ""})
	writeFiles(t, l.CacheDir(ComposerCache), map[string]string{"files/a/b/0123.zip": "zip"})
	res := verifyOnly(t, l, false)
	want := []CacheCheck{{Name: UVCache, Unchecked: 1, Volatile: 1}, {Name: ComposerCache, Unchecked: 1}}
	if !res.OK() || !slices.Equal(res.Caches, want) {
		t.Fatalf("caches %+v, want %+v", res.Caches, want)
	}
}

// TestVerifyFiles checks only the files named: what a delta push packs
// anew, or the files a pull brings. A bad file not named is not read; a
// name that is gone or not a regular file is skipped.
func TestVerifyFiles(t *testing.T) {
	root := t.TempDir()
	good := "sha256:" + hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte("ok")); return s[:] }())
	bad1, bad2 := "sha256:"+strings.Repeat("ab", 32), "sha256:"+strings.Repeat("cd", 32)
	writeFiles(t, root, map[string]string{good: "ok", bad1: "not it", bad2: "not it either"})
	cc, probs, err := VerifyFiles(context.Background(), FetchCache, root, []string{good, bad1, "sha256:" + strings.Repeat("0", 64)})
	if err != nil || cc.Checked != 2 || len(probs) != 1 || probs[0].Path != filepath.Join(root, bad1) {
		t.Fatalf("VerifyFiles: %+v %+v %v; want good and bad1 checked, bad1 reported", cc, probs, err)
	}
	if _, _, err := VerifyFiles(context.Background(), GoCache, root, nil); err == nil {
		t.Error("VerifyFiles on a Go cache: no error")
	}
}
