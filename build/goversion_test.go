package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/melcache/melcache/oci"
)

// apkIndex makes an APKINDEX.tar.gz as apk repositories serve it: a
// signature part, then the index part, each a gzip'd tar without its
// end-of-archive blocks, concatenated.
func apkIndex(t testing.TB, index string) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, f := range []struct{ name, body string }{
		{".SIGN.RSA.melange.rsa.pub", "not a real signature"},
		{"DESCRIPTION", "test repository"},
		{"APKINDEX", index},
	} {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
		tw.Flush() // no Close: apk's parts have no end-of-archive blocks
		zw := gzip.NewWriter(&out)
		zw.Write(tb.Bytes())
		zw.Close()
	}
	return out.Bytes()
}

// goIndex is an APKINDEX with several go versions (1.10 sorts above 1.9,
// and a go-1.NN package that provides go=), and packages that are not go.
const goIndex = `C:Q1abc=
P:go
V:1.9.9-r0
A:x86_64

P:go
V:1.10.2-r3
A:x86_64

P:go-1.10
V:1.10.4-r1
p:cmd:gofmt=1.10.4-r1 go=1.10.4-r1

P:gox
V:9.9.9-r0

P:busybox
V:1.36.1-r0
p:go=notgo
`

// writeRepo writes a local repository dir holding index for arch.
func writeRepo(t testing.TB, arch, index string) string {
	t.Helper()
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, arch), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, arch, apkIndexFile), apkIndex(t, index), 0o644); err != nil {
		t.Fatal(err)
	}
	return repo
}

func writeYAML(t testing.TB, packages string, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pkg.yaml")
	y := "package:\n  name: p\n  version: 1.0.0\nenvironment:\n  contents:\n" + extra + "    packages:\n" + packages + "pipeline:\n  - runs: echo\n"
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseGoVersion(t *testing.T) {
	for in, want := range map[string]string{
		"1.26": "1.26", "1.26.8": "1.26", "go1.26.8": "1.26", "go-1.26": "1.26",
		"1.26.8-r0": "1.26", "1.27rc1": "1.27", " 1.26 ": "1.26",
	} {
		if got, err := ParseGoVersion(in); err != nil || got != want {
			t.Errorf("ParseGoVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "go", "1", "latest", "golang-1.26", "v1.26"} {
		var ue *UsageError
		if got, err := ParseGoVersion(bad); !errors.As(err, &ue) || ue.Flag != "--go" {
			t.Errorf("ParseGoVersion(%q) = %q, %v; want a --go usage error", bad, got, err)
		}
	}
}

func TestScanAPKIndexGo(t *testing.T) {
	got, err := readAPKIndexGo(bytes.NewReader(apkIndex(t, goIndex)))
	if err != nil || got != "1.10.4-r1" {
		t.Fatalf("got %q, %v; want 1.10.4-r1 (highest, by number, provides included)", got, err)
	}
	if got, err := readAPKIndexGo(bytes.NewReader(apkIndex(t, "P:busybox\nV:1.36.1-r0\n"))); err != nil || got != "" {
		t.Errorf("no go: got %q, %v", got, err)
	}
	if _, err := readAPKIndexGo(strings.NewReader("not gzip")); err == nil {
		t.Error("not gzip: no error")
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.26.8-r0", "1.26.8-r1", -1}, {"1.26.10-r0", "1.26.9-r5", 1}, {"1.27rc1-r0", "1.27-r0", -1},
		{"1.26-r0", "1.26.0-r0", -1}, {"1.26.8-r0", "1.26.8-r0", 0},
	} {
		if got := compareAPKVersions(c.a, c.b); got != c.want {
			t.Errorf("compare(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestGoResolver covers each place {go} comes from: --go, the forms of a
// pinned package, and for an unpinned go the apk index of the melange
// args' repositories or the config's, local or remote.
func TestGoResolver(t *testing.T) {
	ctx := context.Background()
	repo := writeRepo(t, "x86_64", goIndex)
	unpinned := "      - go\n"
	for _, c := range []struct {
		name, packages, extra, pin string
		repos                      []string
		want                       string
	}{
		{"go-1.26", "      - go-1.26\n", "", "", nil, "1.26"},
		{"go~1.26", "      - go~1.26\n", "", "", nil, "1.26"},
		{"go=1.26.8-r0", "      - go=1.26.8-r0\n", "", "", nil, "1.26"},
		{"go-1.25=1.25.3-r1", "      - go-1.25=1.25.3-r1\n", "", "", nil, "1.25"},
		{"pin wins", "      - go-1.25\n", "", "1.27.1", nil, "1.27"},
		{"unpinned, -r", unpinned, "", "", []string{repo}, "1.10"},
		{"unpinned, config repositories", unpinned, "    repositories:\n      - '@local " + repo + "'\n", "", nil, "1.10"},
		{"unpinned, missing repo then a good one", unpinned, "", "", []string{filepath.Join(repo, "nope"), repo}, "1.10"},
		{"go/build step", "      - busybox\n", "", "", []string{repo}, "1.10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeYAML(t, c.packages, c.extra)
			if c.name == "go/build step" {
				os.WriteFile(cfg, []byte("package:\n  name: p\n  version: 1.0.0\npipeline:\n  - uses: go/build\n    with:\n      packages: .\n"), 0o644)
			}
			r := NewGoResolver(GoVersionOptions{Pin: c.pin, Config: cfg, Repositories: c.repos, Arch: "x86_64"})
			if got, err := r.Version(ctx); err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
			// A tag never says go-go.
			tag, err := oci.ExpandKey("go-{go}-{arch}", oci.KeyOptions{Arch: "x86_64", Go: r.KeyFunc(ctx)})
			if err != nil || tag != "go-"+c.want+"-x86_64" {
				t.Errorf("key = %q, %v", tag, err)
			}
		})
	}
}

// TestGoResolverNoIndex: an unpinned go with no readable index fails with
// one line that names the config entry and says how to pin Go.
func TestGoResolverNoIndex(t *testing.T) {
	ctx := context.Background()
	cfg := writeYAML(t, "      - busybox\n      - go\n", "")
	otherArch := writeRepo(t, "aarch64", goIndex)
	noGo := writeRepo(t, "x86_64", "P:busybox\nV:1\n")
	for name, c := range map[string]struct {
		repos []string
		want  string
	}{
		"no repositories": {nil, "no apk repository is given"},
		"missing dir":     {[]string{filepath.Join(t.TempDir(), "nope")}, "no APKINDEX could be read"},
		"other arch":      {[]string{otherArch}, "no APKINDEX could be read"},
		"no go in index":  {[]string{noGo}, "has a go package for x86_64"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewGoResolver(GoVersionOptions{Config: cfg, Repositories: c.repos, Arch: "x86_64"}).Version(ctx)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range []string{cfg + ":8:9: go pins no version", c.want, "pin it: --go 1.NN"} {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
		})
	}
	// No config and no --go: a usage error.
	var ue *UsageError
	if _, err := NewGoResolver(GoVersionOptions{}).Version(ctx); !errors.As(err, &ue) {
		t.Errorf("no config: %v, want a usage error", err)
	}
}

// TestGoResolverRemote reads a remote index from a loopback server once,
// however often {go} is expanded, and names the URL when it cannot.
func TestGoResolverRemote(t *testing.T) {
	ctx := context.Background()
	var hits atomic.Int32
	body := apkIndex(t, goIndex)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/os/x86_64/APKINDEX.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	cfg := writeYAML(t, "      - go\n", "    repositories:\n      - "+srv.URL+"/os\n")
	r := NewGoResolver(GoVersionOptions{Config: cfg, Arch: "x86_64", Client: srv.Client()})
	ko := oci.KeyOptions{Arch: "x86_64", Go: r.KeyFunc(ctx)}
	for _, tpl := range []string{"go-{go}-{arch}", "go-{go}-"} {
		if tag, err := oci.ExpandKey(tpl, ko); err != nil || !strings.HasPrefix(tag, "go-1.10-") {
			t.Errorf("%s: %q, %v", tpl, tag, err)
		}
	}
	if v, err := r.Version(ctx); err != nil || v != "1.10" {
		t.Errorf("Version = %q, %v", v, err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the index was fetched %d times, want once", n)
	}

	// A 404 and a server that is gone: the error names the URL.
	bad := writeYAML(t, "      - go\n", "    repositories:\n      - "+srv.URL+"/missing\n")
	_, err := NewGoResolver(GoVersionOptions{Config: bad, Arch: "x86_64", Client: srv.Client()}).Version(ctx)
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/missing/x86_64/APKINDEX.tar.gz: 404") {
		t.Errorf("404: %v", err)
	}
	url := srv.URL
	srv.Close()
	_, err = NewGoResolver(GoVersionOptions{Config: cfg, Arch: "x86_64"}).Version(ctx)
	if err == nil || !strings.Contains(err.Error(), url+"/os/x86_64/APKINDEX.tar.gz") || !strings.Contains(err.Error(), "--go") {
		t.Errorf("server gone: %v", err)
	}
}

// TestParseMelangeArgsRepositories reads -r and --repository-append.
func TestParseMelangeArgsRepositories(t *testing.T) {
	m, err := ParseMelangeArgs([]string{"-r", "a", "--repository-append=b,c", "--arch", "x86_64", "--repository-append", "d"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Repositories, " "); got != "a b c d" {
		t.Errorf("repositories %q", got)
	}
	if got := strings.Join(m.Args, " "); got != "-r a --repository-append=b,c --arch x86_64 --repository-append d" {
		t.Errorf("args passed on: %q", got)
	}
}
