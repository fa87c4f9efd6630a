package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// volCache writes a GOCACHE in Go's format into dir/gocache: outputs named
// by their SHA-256, action entries as cmd/go/internal/cache writes them,
// and one module-index output with its action. It returns the action
// entries' paths by name.
func volCache(t *testing.T, dir string) map[string]string {
	t.Helper()
	gc := filepath.Join(dir, "gocache")
	actions := map[string]string{}
	for _, name := range []string{"compile fmt", "link hello", "modindex std"} {
		out := "!<arch>\n" + name + "\n"
		if name == "modindex std" {
			out = "go index v2\n" + name
		}
		o := hexSum(out)
		writeTestFile(t, filepath.Join(gc, o[:2], o+"-d"), out)
		a := hexSum(name)
		p := filepath.Join(gc, a[:2], a+"-a")
		writeTestFile(t, p, fmt.Sprintf("v1 %s %s %20d %20d\n", a, o, len(out), time.Now().UnixNano()))
		actions[name] = p
	}
	return actions
}

func hexSum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// retimeAction rewrites an action entry in place with a new time field, as
// Go does when it records the same action again.
func retimeAction(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(mount.ActionWithTime(b, time.Now().UnixNano()+1e9)); err != nil {
		t.Fatal(err)
	}
}

func pushPullResult(t *testing.T, r runResult) oci.Result {
	t.Helper()
	var res oci.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json printed no result: %v\n%s", err, r.stdout)
	}
	return res
}

// TestCLIRetimedActionUnchanged: through the CLI, an action entry whose
// time field alone changed is unchanged for push (nothing uploaded), for
// verify (no problem) and for a merge pull (kept, nothing downloaded);
// module-index entries are left out and counted.
func TestCLIRetimedActionUnchanged(t *testing.T) {
	work := t.TempDir()
	src, dst := filepath.Join(work, "src"), filepath.Join(work, "dst")
	actions := volCache(t, src)
	ref := "oci:" + filepath.Join(work, "layout") + ":k"
	out := mustRun(t, nil, "push", "--dir", src, ref).stdout
	if !strings.Contains(out, "left out 2 module-index entries") {
		t.Fatalf("first push did not report the module-index entries it left out:\n%s", out)
	}
	res := pushPullResult(t, mustRun(t, nil, "push", "--dir", src, ref, "--json"))
	if res.ModIndex != 2 || res.Files != 4 {
		t.Fatalf("push: %+v; want 4 files, 2 module-index entries left out", res)
	}
	retimeAction(t, actions["link hello"])
	res = pushPullResult(t, mustRun(t, nil, "push", "--dir", src, ref, "--json"))
	if !res.Unchanged || res.DataBytes+res.MetaBytes != 0 {
		t.Fatalf("push after a time-only rewrite: %+v; want unchanged, nothing uploaded", res)
	}
	if r := mrun(t, nil, "verify", "--dir", src); r.code != 0 {
		t.Fatalf("verify after a time-only rewrite: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	mustRun(t, nil, "pull", "--dir", dst, ref)
	local := filepath.Join(dst, "gocache", filepath.Base(filepath.Dir(actions["compile fmt"])), filepath.Base(actions["compile fmt"]))
	retimeAction(t, local)
	want, _ := os.ReadFile(local)
	res = pushPullResult(t, mustRun(t, nil, "pull", "--dir", dst, ref, "--json"))
	if got, _ := os.ReadFile(local); res.FilesWritten != 0 || res.Layers != 0 || string(got) != string(want) {
		t.Fatalf("merge pull over a retimed action entry: %+v, content %q; want it kept, nothing downloaded", res, got)
	}
	if r := mrun(t, nil, "verify", "--dir", dst); r.code != 0 {
		t.Fatalf("verify after the merge pull: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An action entry naming another output is a change.
	b, _ := os.ReadFile(actions["compile fmt"])
	copy(b[3+64+1:], hexSum("another output"))
	if err := os.WriteFile(actions["compile fmt"], b, 0o644); err != nil {
		t.Fatal(err)
	}
	res = pushPullResult(t, mustRun(t, nil, "push", "--dir", src, ref, "--json"))
	if res.Unchanged || res.Layers != 1 {
		t.Fatalf("push after an output change: %+v; want one new layer", res)
	}
}
