package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// pushJSON runs push --json and decodes the fields the base rule reports.
func pushJSON(t *testing.T, args ...string) (res struct {
	Base         string `json:"base"`
	BaseRule     string `json:"baseRule"`
	BaseStore    string `json:"baseStore"`
	BlobsMounted int    `json:"blobsMounted"`
	Layers       int    `json:"layers"`
}) {
	t.Helper()
	r := mustRun(t, nil, append([]string{"push", "-q", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("push %s: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	return res
}

// TestPushBaseFlags: through the CLI on a real registry, a push to a new
// repository mounts the layers of the dir's snapshot in another repository
// of the registry, --base forces a base, --restore-keys finds one for a
// dir that exchanged nothing, and a malformed --base is a usage error.
func TestPushBaseFlags(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	work := t.TempDir()
	src, fresh := filepath.Join(work, "src"), filepath.Join(work, "fresh")
	a, b := reg.Host+"/cli/a", reg.Host+"/cli/b"
	fakeCache(t, src, 1)
	first := pushJSON(t, "--dir", src, a+":k1")
	if first.Base != "" {
		t.Fatalf("first push had a base: %+v", first)
	}
	fakeCache(t, src, 2)
	cross := pushJSON(t, "--dir", src, b+":k2")
	if cross.BaseRule != "other repository" || cross.BaseStore != a || cross.BlobsMounted == 0 {
		t.Errorf("push to another repository: %+v", cross)
	}
	if n := len(reg.Requests(t, "POST", "/v2/cli/b/blobs/uploads/?mount=")); n != cross.BlobsMounted {
		t.Errorf("access log shows %d mounts, push reported %d", n, cross.BlobsMounted)
	}
	forced := pushJSON(t, "--dir", src, "--base", a+":k1", b+":k3")
	if forced.BaseRule != "--base" || forced.BaseStore != a {
		t.Errorf("push --base: %+v", forced)
	}
	fakeCache(t, fresh, 1)
	keyed := pushJSON(t, "--dir", fresh, "--restore-keys", "x,k", a+":k9")
	if keyed.BaseRule != "restore-key k" {
		t.Errorf("push --restore-keys: %+v", keyed)
	}
	out := mustRun(t, nil, "push", "--dir", src, reg.Host+"/cli/c:k5").stdout
	if want := "(other repository) in " + b + ", "; !strings.Contains(out, want) || !strings.Contains(out, " blobs mounted") {
		t.Errorf("push output lacks %q:\n%s", want, out)
	}
	r := mrun(t, nil, "push", "--dir", src, "--base", "no:such", a+":k4")
	if r.code != 2 || !strings.Contains(r.stderr, "--base") {
		t.Errorf("malformed --base: exit %d\n%s", r.code, r.stderr)
	}
}
