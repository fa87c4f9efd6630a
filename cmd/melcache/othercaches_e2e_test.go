package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
)

// cacheFiles maps "cache/path" to mode and content digest for each file of
// the caches other than Go's under dir, volatile files aside (the fetch
// cache: DIR's sha256:/sha512: files).
func cacheFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	add := func(key, p string, fi fs.FileInfo) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		out[key] = fi.Mode().String() + " " + hex.EncodeToString(s[:])
	}
	for _, p := range mount.AllProfiles() {
		if p.GoCache {
			continue
		}
		if p.TopLevel {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if _, _, ok := mount.FetchDigest(e.Name()); ok {
					fi, _ := e.Info()
					add("fetch/"+e.Name(), filepath.Join(dir, e.Name()), fi)
				}
			}
			continue
		}
		root := filepath.Join(dir, string(p.Name))
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			if !p.IsVolatile(filepath.ToSlash(rel)) {
				fi, _ := d.Info()
				add(string(p.Name)+"/"+filepath.ToSlash(rel), path, fi)
			}
			return nil
		})
	}
	return out
}

func sameFiles(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s is %q, want %q", what, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: extra %s", what, k)
		}
	}
}

// TestOtherCachesThroughCLI: issue 15 through the CLI on a real registry. A
// dir with real npm and pip caches and the fetch cache pushes them beside
// the Go caches and pulls back byte for byte (volatile files aside);
// a tampered fetch file is skipped and counted; push --only npm and pull
// --only npm leave the other caches as they were.
func TestOtherCachesThroughCLI(t *testing.T) {
	testenv.SkipShort(t, "end-to-end (registry, npm, pip)")
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	src := filepath.Join(t.TempDir(), "src")
	mustRun(t, nil, "prepare", "-q", "--dir", src, "--cache", "gomodcache,gocache,npm,pip")
	testenv.FillNPMCache(t, filepath.Join(src, "npm"), testenv.DemoNPMPackage)
	testenv.FillPipCache(t, filepath.Join(src, "pip"))
	good := []byte("a source tarball\n")
	sum := sha256.Sum256(good)
	name := "sha256:" + hex.EncodeToString(sum[:])
	writeFile(t, filepath.Join(src, name), good)
	bad := "sha256:" + strings.Repeat("0", 64)
	writeFile(t, filepath.Join(src, bad), []byte("not what its name says\n"))
	writeFile(t, filepath.Join(src, "hello-1.0-r0.apk"), []byte("an apk"))

	ref := reg.Host + "/caches:t1"
	r := mustRun(t, nil, "push", "--dir", src, ref)
	if !strings.Contains(r.stdout, "skipped 1 cache files") || !strings.Contains(r.stderr, bad) {
		t.Errorf("push of a tampered fetch file: want it skipped, counted and named\n%s%s", r.stdout, r.stderr)
	}
	if r := mustRun(t, nil, "inspect", "--json", ref); !strings.Contains(strings.Join(strings.Fields(r.stdout), ""), `"caches":["gomodcache","gocache","npm","pip","fetch"]`) {
		t.Errorf("inspect: the config does not list the caches pushed:\n%s", r.stdout)
	}
	want := cacheFiles(t, src)
	delete(want, "fetch/"+bad)

	dst := filepath.Join(t.TempDir(), "dst")
	mustRun(t, nil, "pull", "-q", "--dir", dst, ref)
	sameFiles(t, "pull", want, cacheFiles(t, dst))
	if _, err := os.Lstat(filepath.Join(dst, "hello-1.0-r0.apk")); err == nil {
		t.Error("pull restored a file of DIR that is no cache's")
	}

	// --only npm, both ways: the other caches stay as they were.
	npmRef := reg.Host + "/caches:npm"
	mustRun(t, nil, "push", "-q", "--dir", src, "--only", "npm", npmRef)
	if r := mustRun(t, nil, "inspect", "--json", npmRef); !strings.Contains(strings.Join(strings.Fields(r.stdout), ""), `"caches":["npm"]`) {
		t.Errorf("inspect of push --only npm:\n%s", r.stdout)
	}
	other := filepath.Join(t.TempDir(), "other")
	mustRun(t, nil, "prepare", "-q", "--dir", other, "--cache", "all")
	writeFile(t, filepath.Join(other, "pip", "mine"), []byte("the builder's own\n"))
	writeFile(t, filepath.Join(other, "gocache", "README"), []byte("the builder's own\n"))
	writeFile(t, filepath.Join(other, "sha256:"+strings.Repeat("1", 64)), []byte("the builder's own\n"))
	for _, args := range [][]string{{"--only", "npm", ref}, {"--replace", npmRef}} {
		before := cacheFiles(t, other)
		gocache, _ := os.ReadFile(filepath.Join(other, "gocache", "README"))
		mustRun(t, nil, append([]string{"pull", "-q", "--dir", other}, args...)...)
		after := cacheFiles(t, other)
		for k, v := range before {
			if !strings.HasPrefix(k, "npm/") && after[k] != v {
				t.Errorf("pull %v changed %s", args, k)
			}
		}
		for k, v := range want {
			if strings.HasPrefix(k, "npm/") && after[k] != v {
				t.Errorf("pull %v: %s is %q, want %q", args, k, after[k], v)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(other, "gocache", "README")); string(b) != string(gocache) {
			t.Errorf("pull %v changed gocache", args)
		}
	}
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
