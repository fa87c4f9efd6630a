package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/oci"
)

// TestCLIEscapesSnapshotStrings (issue 11, finding 11): strings a snapshot
// or store controls — arch, Go version, annotations, tags — carry terminal
// escape sequences; inspect, ls and pull's errors print them escaped
// (\x1b, \a), never raw, and keep ordinary UTF-8.
func TestCLIEscapesSnapshotStrings(t *testing.T) {
	const (
		title = "\x1b]0;pwned\x07" // sets the terminal's title
		clear = "\x1b[2J\x1b[31m"  // clears the screen, turns red
		bidi  = "\u202e"           // reverses what follows
		csi1  = "\u009b1m"         // a C1 CSI
		utf8s = "größe-日本"         // ordinary UTF-8, kept
	)
	body := "hello"
	h := sha256.Sum256([]byte(body))
	entries := []map[string]any{{"cache": "gocache", "path": "x", "type": "file", "mode": 0o644, "size": len(body), "sha256": hex.EncodeToString(h[:])}}
	lay := filepath.Join(t.TempDir(), "lay")
	hostileLayout(t, lay, entries, []tar.Header{{Typeflag: tar.TypeReg, Name: "gocache/x", Mode: 0o644}}, []string{body},
		func(c map[string]any) {
			c["arch"] = "amd64" + title + utf8s
			c["goVersion"] = "go1.26" + clear + bidi
		},
		func(m map[string]any) {
			m["annotations"] = map[string]string{
				oci.AnnotationCreated: "2026-01-01T00:00:00Z" + clear,
				oci.AnnotationKey:     "key" + csi1 + title,
			}
		})
	// A second tag, named with an escape sequence in index.json (an OCI
	// layout's tags are whatever its writer put there).
	idx, err := os.ReadFile(filepath.Join(lay, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	evilTag := `bad\u001b[2Jtag`
	idx = []byte(strings.Replace(string(idx), `]}`, `,`+strings.Replace(strings.TrimSuffix(strings.SplitN(string(idx), `"manifests":[`, 2)[1], `]}`), `"bad"`, `"`+evilTag+`"`, 1)+`]}`, 1))
	if err := os.WriteFile(filepath.Join(lay, "index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}

	raw := []string{"\x1b", "\x07", "\u202e", "\u009b"}
	check := func(what, out string, want ...string) {
		t.Helper()
		for _, r := range raw {
			if strings.Contains(out, r) {
				t.Errorf("%s printed a raw %q:\n%s", what, r, out)
			}
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", what, w, out)
			}
		}
	}
	r := mustRun(t, nil, "inspect", "oci:"+lay+":bad")
	check("inspect", r.stdout+r.stderr, `amd64\x1b]0;pwned\a`+utf8s, `go1.26\x1b[2J\x1b[31m\u202e`,
		`2026-01-01T00:00:00Z\x1b[2J`, `key\u009b1m\x1b]0;pwned\a`)
	r = mustRun(t, nil, "ls", "oci:"+lay)
	check("ls", r.stdout+r.stderr, `bad\x1b[2Jtag`)
	// The JSON forms escape as JSON does.
	r = mustRun(t, nil, "inspect", "--json", "oci:"+lay+":bad")
	check("inspect --json", r.stdout+r.stderr, `\u001b]0;pwned\u0007`)
	// pull warns about the foreign arch, quoting it: escaped too, and
	// its summary and any error line likewise.
	dir := filepath.Join(t.TempDir(), "cache")
	r = mrun(t, nil, "pull", "--dir", dir, "oci:"+lay+":bad")
	check("pull", r.stdout+r.stderr, `\x1b]0;pwned\a`)
	// Error lines are escaped where they are printed, whatever they
	// quote: here a layout path with an escape sequence in it.
	r = mrun(t, nil, "inspect", "oci:"+filepath.Join(t.TempDir(), "no"+clear+"pe")+":x")
	if r.code == 0 {
		t.Fatal("inspect of a missing layout succeeded")
	}
	check("error line", r.stderr, `no\x1b[2J\x1b[31mpe`)
}
