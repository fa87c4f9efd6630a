package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/oci"
)

// stallAttempts is oci's defaultStallAttempts: downloads of one blob (or
// attempts of one request) that may end in a timeout before pull gives up.
const stallAttempts = 3

// dataLayer returns the digest of the largest data layer of the layout's
// snapshot tagged tag.
func dataLayer(t *testing.T, srv *layoutServer, tag string) string {
	t.Helper()
	b, err := os.ReadFile(srv.blobPath(srv.tagDigest(tag)))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Layers []struct {
			MediaType, Digest string
			Size              int64
		}
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	best, size := "", int64(-1)
	for _, l := range m.Layers {
		if l.MediaType == oci.LayerMediaType && l.Size > size {
			best, size = l.Digest, l.Size
		}
	}
	if best == "" {
		t.Fatal("no data layer")
	}
	return best
}

// TestPullStalledRegistry (issue 11, finding 6): a registry that sends
// headers and 100 KB of a layer and then goes silent, or never sends the
// headers, makes pull fail once the (injected, short) timeout has been hit
// a bounded number of times, with one line naming the registry, the blob
// and the timeout, and the old cache byte-identical. Without the timeouts
// this pull hangs forever.
func TestPullStalledRegistry(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	w := t.TempDir()
	src, lay := filepath.Join(w, "src"), filepath.Join(w, "lay")
	mkCache(t, src, 1, 4, 256<<10)
	mustRun(t, nil, "push", "--dir", src, "oci:"+lay+":snap")
	srv := newLayoutServer(t, lay)
	layer := dataLayer(t, srv, "snap")
	if fi, err := os.Stat(srv.blobPath(layer)); err != nil || fi.Size() < 200<<10 {
		t.Fatalf("data layer too small to stall mid-way: %v %v", fi, err)
	}
	dst := filepath.Join(w, "dst")
	mkCache(t, dst, 2, 3, 1000)
	before := treeState(t, dst)
	ref := srv.host() + "/cache:snap"

	for _, tc := range []struct {
		name    string
		after   int64 // body bytes before the stall; -1: no headers
		env     string
		waiting string
	}{
		{"idle body", 100 << 10, oci.EnvIdleReadTimeout, "no data for blob " + layer},
		{"no headers", -1, oci.EnvResponseHeaderTimeout, "no response headers for blob " + layer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gets0, bytes0 := srv.counts(layer)
			srv.stall(layer, tc.after)
			r := mrun(t, []string{tc.env + "=300ms"}, "pull", "--dir", dst, ref)
			gets, sent := srv.counts(layer)
			gets, sent = gets-gets0, sent-bytes0
			want := []string{"registry " + srv.host() + " stalled", tc.waiting, "within 300ms", tc.env}
			if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !containsAll(r.stderr, want...) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and one line containing %q", r.code, r.stderr, want)
			}
			if gets != stallAttempts {
				t.Errorf("the stalled layer was requested %d times, want %d (bounded retries of a stall)", gets, stallAttempts)
			}
			if tc.after >= 0 && sent != int64(stallAttempts)*tc.after {
				t.Errorf("%d bytes of the stalled layer were sent, want %d (each resume continues where the last stopped)", sent, int64(stallAttempts)*tc.after)
			}
			if treeState(t, dst) != before {
				t.Fatal("the stalled pull changed the cache")
			}
			checkClean(t, dst)
		})
	}
	// The same registry answering again: the pull goes through.
	srv.stall("", 0)
	mustRun(t, []string{oci.EnvIdleReadTimeout + "=300ms"}, "pull", "--dir", dst, ref)
}

// TestTimeoutEnvUsage: a bad timeout value is a usage error naming it.
func TestTimeoutEnvUsage(t *testing.T) {
	r := mrun(t, []string{oci.EnvIdleReadTimeout + "=soon"}, "ls", "127.0.0.1:1/cache")
	if r.code != 2 || !strings.Contains(r.stderr, oci.EnvIdleReadTimeout+`="soon"`) {
		t.Fatalf("exit %d, stderr %q; want 2 naming the variable", r.code, r.stderr)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestPullLocalFailuresNotRetried (issue 11, finding 7): a failure a new
// download cannot fix — content that does not decode although its digest
// matches, a name too long for the file system, a full disk — fails the
// pull after one download of the layer (counted at the registry), with one
// line and the old cache unchanged. They used to be retried three times,
// re-downloading the layer each time.
func TestPullLocalFailuresNotRetried(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	w := t.TempDir()
	dst := filepath.Join(w, "dst")
	mkCache(t, dst, 2, 3, 1000)
	before := treeState(t, dst)
	body := strings.Repeat("x", 1000)
	h := sha256.Sum256([]byte(body))
	sum := hex.EncodeToString(h[:])
	entry := func(p string) map[string]any {
		return map[string]any{"cache": "gocache", "path": p, "type": "file", "mode": 0o644, "size": len(body), "sha256": sum}
	}
	tarOf := func(name string) []byte {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
		tw.Close()
		return tb.Bytes()
	}
	// 20 components of 200 bytes: within PATH_MAX as a name in the
	// snapshot, over it under any cache dir.
	var long []string
	for i := range 20 {
		long = append(long, strings.Repeat(string(rune('a'+i)), 200))
	}
	longName := strings.Join(long, "/")

	withParents := func(p string) []map[string]any {
		var es []map[string]any
		for i := range p {
			if p[i] == '/' {
				es = append(es, map[string]any{"cache": "gocache", "path": p[:i], "type": "dir", "mode": 0o755})
			}
		}
		return append(es, entry(p))
	}
	full := tarOf("gocache/t")
	for _, tc := range []struct {
		name    string
		entries []map[string]any
		tar     []byte
		tarSize int // the uncompressed size the config declares
		want    string
		// maySucceed: a restore may legitimately manage it.
		maySucceed bool
	}{
		// The tar ends inside the file's data; the blob's digest is
		// of these very bytes.
		{"truncated tar", withParents("t"), full[:512+100], len(full), "does not decode", false},
		{"name too long", withParents(longName), tarOf("gocache/" + longName), 0, "file name too long", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lay := filepath.Join(t.TempDir(), "lay")
			var cfg func(map[string]any)
			if tc.tarSize > 0 {
				cfg = func(c map[string]any) { c["layers"].([]map[string]any)[0]["size"] = tc.tarSize }
			}
			layoutFromTar(t, lay, tc.entries, tc.tar, cfg, nil)
			srv := newLayoutServer(t, lay)
			layer := dataLayer(t, srv, "bad")
			r := mrun(t, nil, "pull", "--dir", dst, srv.host()+"/cache:bad")
			gets, _ := srv.counts(layer)
			t.Logf("exit %d after %d downloads: %.300s", r.code, gets, r.stderr)
			if tc.maySucceed && r.code == 0 {
				// A restore that creates files relative to their
				// directory never meets PATH_MAX; then nothing
				// failed and nothing may have been fetched twice.
				t.Log("the file system took the long name")
			} else if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and one line containing %q", r.code, r.stderr, tc.want)
			} else if treeState(t, dst) != before {
				t.Fatal("the failed pull changed the cache")
			}
			if gets > 1 {
				t.Errorf("the layer was downloaded %d times, want at most once: a retry cannot fix %s", gets, tc.name)
			}
			checkClean(t, dst)
		})
	}

	t.Run("disk full", func(t *testing.T) {
		testenv.RequireRoot(t, "mount a small tmpfs in a private mount namespace")
		unshare := testenv.RequireTool(t, "unshare")
		src, lay := filepath.Join(w, "src"), filepath.Join(w, "lay")
		mkCache(t, src, 1, 4, 256<<10) // ~1 MB of files
		mustRun(t, nil, "push", "--dir", src, "oci:"+lay+":snap")
		srv := newLayoutServer(t, lay)
		layer := dataLayer(t, srv, "snap")
		// The old cache on a 512 KiB tmpfs: the pull runs out of space.
		script := `set -e
mount -t tmpfs -o size=512k tmpfs "$D"
cp -a "$OLD"/. "$D"/
state() { (cd "$D" && find gocache gomodcache -type f -exec sha256sum {} + | sort); }
state > "$W/before"
set +e
"$MELCACHE" pull --dir "$D" "$REF" 2> "$W/stderr"
echo $? > "$W/rc"
state > "$W/after"
ls -A "$D/.melcache" > "$W/state-files" 2>/dev/null || true
`
		d, out := filepath.Join(w, "tmpfs"), filepath.Join(w, "out")
		os.MkdirAll(d, 0o755)
		os.MkdirAll(out, 0o755)
		cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script)
		cmd.Env = append(baseEnv(t), "D="+d, "OLD="+dst, "W="+out, "MELCACHE="+melcacheBin(t), "REF="+srv.host()+"/cache:snap")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		read := func(name string) string { b, _ := os.ReadFile(filepath.Join(out, name)); return string(b) }
		stderr := read("stderr")
		t.Logf("exit %s: %s", strings.TrimSpace(read("rc")), stderr)
		if strings.TrimSpace(read("rc")) != "1" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no space left on device") {
			t.Fatalf("exit %s, stderr %q; want exit 1 and one line saying the disk is full", read("rc"), stderr)
		}
		if read("before") == "" || read("before") != read("after") {
			t.Fatal("the pull that ran out of space changed the cache")
		}
		if strings.Contains(read("state-files"), "staging") || strings.Contains(read("state-files"), "journal") {
			t.Errorf("staging or journal left behind: %q", read("state-files"))
		}
		if gets, _ := srv.counts(layer); gets != 1 {
			t.Errorf("the layer was downloaded %d times, want once: a retry cannot free space", gets)
		}
	})
}
