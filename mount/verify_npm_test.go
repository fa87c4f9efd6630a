package mount

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// fillNPMCache fills DIR/npm as a melange build would, offline
// (testenv.FillNPMCache).
func fillNPMCache(t *testing.T) Layout {
	l, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(context.Background(), PrepareOptions{Caches: []Cache{NPMCache}}); err != nil {
		t.Fatal(err)
	}
	testenv.FillNPMCache(t, l.CacheDir(NPMCache), testenv.DemoNPMPackage)
	return l
}

// npmFiles returns the cacache content files and index buckets under l.
func npmFiles(t *testing.T, l Layout) (content, buckets []string) {
	t.Helper()
	root := filepath.Join(l.CacheDir(NPMCache), "_cacache")
	content, _ = filepath.Glob(filepath.Join(root, "content-v2", "sha512", "*", "*", "*"))
	buckets, _ = filepath.Glob(filepath.Join(root, "index-v5", "*", "*", "*"))
	if len(content) == 0 || len(buckets) == 0 {
		t.Fatalf("npm filled no cacache content (%v) or index (%v)", content, buckets)
	}
	return content, buckets
}

func verifyOnly(t *testing.T, l Layout, repair bool) *VerifyResult {
	t.Helper()
	res, err := l.Verify(context.Background(), VerifyOptions{Repair: repair})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestVerifyNPMRealCache(t *testing.T) {
	l := fillNPMCache(t)
	content, buckets := npmFiles(t, l)
	res := verifyOnly(t, l, false)
	if !res.OK() || len(res.Caches) != 1 || res.Caches[0].Name != NPMCache {
		t.Fatalf("fresh npm cache: problems %v, caches %+v", res.Problems, res.Caches)
	}
	if c := res.Caches[0]; c.Checked != len(content)+len(buckets) || c.Volatile == 0 {
		t.Errorf("checked %d files, want %d content + %d buckets; volatile %d, want npm's _logs", c.Checked, len(content), len(buckets), c.Volatile)
	}
	t.Run("index", func(t *testing.T) { testNPMIndex(t, l, content, buckets) })
	// A copy of the cache elsewhere (a restore's staging dir) is checked
	// the same way, content paths resolved under the copy.
	stage := filepath.Join(t.TempDir(), "npm")
	testenv.Run(t, "/", os.Environ(), "cp", "-a", l.CacheDir(NPMCache), stage)
	staged := filepath.Join(stage, strings.TrimPrefix(content[0], l.CacheDir(NPMCache)))
	if err := os.WriteFile(staged, []byte("forged"), 0o644); err != nil {
		t.Fatal(err)
	}
	cc, probs, err := VerifyTree(context.Background(), NPMCache, stage)
	// One tarball, under as many keys as npm made for it: every bucket
	// names that content, whose size is no longer the entry's.
	if err != nil || cc.Checked != len(content)+len(buckets) || len(content) != 1 || len(probs) != 1+len(buckets) {
		t.Fatalf("VerifyTree(staged copy): %+v %+v %v; want the forged content and each index entry whose size it no longer has", cc, probs, err)
	}
	if res := verifyOnly(t, l, false); !res.OK() {
		t.Fatalf("the live cache is untouched by the staged forgery: %v", res.Problems)
	}

	// One flipped byte in a tarball npm would install: same size, other
	// sha512 than the integrity that names the file.
	b, _ := os.ReadFile(content[0])
	b[len(b)/2] ^= 1
	if err := os.WriteFile(content[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	res = verifyOnly(t, l, false)
	if len(res.Problems) != 1 || res.Problems[0].Path != content[0] || !strings.Contains(res.Problems[0].Reason, "does not match its name") {
		t.Fatalf("tampered content: %+v", res.Problems)
	}
	verifyOnly(t, l, true)
	if _, err := os.Lstat(content[0]); !os.IsNotExist(err) {
		t.Errorf("repair left the tampered content: %v", err)
	}
	if res := verifyOnly(t, l, false); !res.OK() {
		t.Errorf("after repair (index entries now point at missing content, a cache miss): %v", res.Problems)
	}
}

// testNPMIndex tampers with an index bucket of l in the ways npm's own
// reader would skip or trip on, and restores it.
func testNPMIndex(t *testing.T, l Layout, content, buckets []string) {
	orig, _ := os.ReadFile(buckets[0])
	defer os.WriteFile(buckets[0], orig, 0o644)
	line := string(bytes.TrimSpace(orig))
	line, _, _ = strings.Cut(line, "\n")
	sum, js, _ := strings.Cut(line, "\t")
	fi, _ := os.Stat(content[0])
	size := `"size":` + itoa(fi.Size())
	if !strings.Contains(js, size) {
		t.Fatalf("index line %q has no %s", js, size)
	}
	forged := strings.Replace(js, size, `"size":`+itoa(fi.Size()+1), 1)
	resum := func(s string) string { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	for _, tc := range []struct{ name, line, want string }{
		{"sha1 prefix kept", sum + "\t" + forged, "sha1 prefix does not match"},
		{"consistent line, wrong size", resum(forged) + "\t" + forged, "says " + itoa(fi.Size()+1) + " bytes"},
		{"not a line", "garbage", "not <sha1>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(buckets[0], []byte("\n"+tc.line), 0o644); err != nil {
				t.Fatal(err)
			}
			res := verifyOnly(t, l, false)
			if len(res.Problems) != 1 || res.Problems[0].Path != buckets[0] || !strings.Contains(res.Problems[0].Reason, tc.want) {
				t.Fatalf("problems %+v, want one on %s saying %q", res.Problems, buckets[0], tc.want)
			}
		})
	}
	// A line moved to another key's bucket: consistent, but not the key's.
	other := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(buckets[0]))), "00", "00", strings.Repeat("0", 60))
	_ = os.WriteFile(buckets[0], orig, 0o644)
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(other)
	res := verifyOnly(t, l, false)
	if len(res.Problems) != 1 || res.Problems[0].Path != other || !strings.Contains(res.Problems[0].Reason, "does not belong in this bucket") {
		t.Fatalf("moved line: %+v", res.Problems)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
