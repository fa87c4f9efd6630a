package mount

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// fillPipCache has pip fill DIR/pip from a local sdist, offline
// (testenv.FillPipCache), and returns the wheel pip cached.
func fillPipCache(t *testing.T) (Layout, string) {
	l, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l, testenv.FillPipCache(t, l.CacheDir(PipCache))
}

// rewriteZip copies the zip at p, changing the member named name to body.
func rewriteZip(t *testing.T, p, name, body string) {
	t.Helper()
	zr, err := zip.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	found := false
	for _, f := range zr.File {
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == name {
			found = true
			_, _ = io.WriteString(w, body)
			continue
		}
		rc, _ := f.Open()
		_, _ = io.Copy(w, rc)
		rc.Close()
	}
	zr.Close()
	if err := zw.Close(); err != nil || !found {
		t.Fatalf("rewrite %s in %s: %v (found %v)", name, p, err, found)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyPipRealCache(t *testing.T) {
	l, whl := fillPipCache(t)
	// pip >= 23.3 keeps HTTP bodies beside their metadata: a wheel body
	// is checked the same way; another body is not a wheel and is left.
	body := filepath.Join(l.CacheDir(PipCache), "http-v2", "a", "b", "c", "d", "e", strings.Repeat("f", 56)+".body")
	b, _ := os.ReadFile(whl)
	if err := os.MkdirAll(filepath.Dir(body), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(body, b, 0o644)
	_ = os.WriteFile(filepath.Join(filepath.Dir(body), strings.Repeat("0", 56)+".body"), []byte("<html>simple index</html>"), 0o644)

	res := verifyOnly(t, l, false)
	if !res.OK() || len(res.Caches) != 1 || res.Caches[0].Checked != 2 {
		t.Fatalf("fresh pip cache: problems %v, caches %+v (want 2 wheels checked)", res.Problems, res.Caches)
	}
	if res.Caches[0].Unchecked == 0 {
		t.Errorf("the html body and origin.json should count as unchecked: %+v", res.Caches[0])
	}

	// Same RECORD, other module content: the wheel no longer matches it.
	rewriteZip(t, whl, "melcdemo.py", "ANSWER = 41\n")
	rewriteZip(t, body, "melcdemo.py", "import os; os.system('id')\n")
	res = verifyOnly(t, l, false)
	if len(res.Problems) != 2 {
		t.Fatalf("tampered wheels: %+v", res.Problems)
	}
	for _, p := range res.Problems {
		if p.Cache != PipCache || !strings.Contains(p.Reason, "melcdemo.py: content does not match its RECORD sha256") {
			t.Errorf("problem %+v", p)
		}
	}

	// The content restored, the wheel matches its RECORD again.
	rewriteZip(t, whl, "melcdemo.py", "ANSWER = 42\n")
	if res := verifyOnly(t, l, false); len(res.Problems) != 1 || res.Problems[0].Path != body {
		t.Fatalf("restored wheel still bad? %+v", res.Problems)
	}
}
