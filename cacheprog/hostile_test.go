package cacheprog

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/melcache/melcache/mount"
)

// treeState records every entry under dir: kind, mode, content or link
// target, mtime. Two equal states mean nothing under dir was read-written.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d", p, fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %q", data)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// plantEntry writes a valid "-a" entry for action naming body, and body as
// its "-d", under gocache (which may be a directory outside the cache).
func plantEntry(t *testing.T, gocache string, action ID, body []byte, old time.Time) {
	t.Helper()
	out, _ := ParseID(outputOf(body))
	e := mount.ActionEntry{ID: action.String(), Out: out.String(), Size: int64(len(body)), Time: old}
	for name, data := range map[string][]byte{action.name("a"): e.Format(), out.name("d"): body} {
		p := filepath.Join(gocache, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostileRequestsStayInside is the hostile-forwarder test: requests with
// "../" in IDs, wrong lengths and non-hex names in entries, and links
// planted in DIR/gocache (a shard, an "-a", a "-d") get the server to read
// or write nothing outside DIR: every such get is a miss, every such put an
// error or a write that replaces the link inside DIR, and the stream goes
// on. The directory outside holds valid entries for every action used, so
// following any link would turn a miss into a hit. FIFOs planted as an
// "-a" or a "-d" are misses that do not hang the server. It runs on both
// lookup paths: openat2 (fsutil.Beneath) and the os.Root one kept for
// kernels without it.
func TestHostileRequestsStayInside(t *testing.T) {
	for _, path := range []string{"openat2", "os.Root"} {
		t.Run(path, func(t *testing.T) { hostileRequests(t, path == "openat2") })
	}
}

func hostileRequests(t *testing.T, openat2 bool) {
	base := t.TempDir()
	dir, outside := filepath.Join(base, "DIR"), filepath.Join(base, "outside")
	gocache := filepath.Join(dir, "gocache")
	old := time.Now().Add(-48 * time.Hour) // a hit would refresh it
	ids := map[string]ID{}
	names := []string{"shard", "alink", "dlink", "badout", "upper", "fileshard", "fifo", "fifod"}
	for _, n := range names {
		ids[n], _ = ParseID(actionID(n))
		plantEntry(t, outside, ids[n], []byte("outside "+n), old)
	}
	if err := os.MkdirAll(gocache, 0o755); err != nil {
		t.Fatal(err)
	}
	// A shard that is a link to the outside's shard of the same action.
	if err := os.Symlink(filepath.Join(outside, ids["shard"].shard()), filepath.Join(gocache, ids["shard"].shard())); err != nil {
		t.Fatal(err)
	}
	// A shard that is a regular file.
	if ids["fileshard"].shard() == ids["shard"].shard() {
		t.Fatal("test actions share a shard")
	}
	if err := os.WriteFile(filepath.Join(gocache, ids["fileshard"].shard()), []byte("not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An "-a" that is a link to the outside's valid entry.
	plantLink(t, gocache, ids["alink"].name("a"), filepath.Join(outside, ids["alink"].name("a")))
	// A valid "-a" whose "-d" is a link to the outside's output.
	body := []byte("outside dlink")
	plantEntry(t, gocache, ids["dlink"], body, old)
	dOut, _ := ParseID(outputOf(body))
	os.Remove(filepath.Join(gocache, dOut.name("d")))
	plantLink(t, gocache, dOut.name("d"), filepath.Join(outside, dOut.name("d")))
	// "-a" entries whose output is a path, or upper-case hex.
	plantRaw(t, gocache, ids["badout"], strings.Repeat("../", 21)+"x")
	plantRaw(t, gocache, ids["upper"], strings.ToUpper(hexOf(outputOf([]byte("outside upper")))))
	copyOut(t, outside, gocache, outputOf([]byte("outside upper")))
	// A FIFO as an "-a", and a valid "-a" whose "-d" is a FIFO: opening
	// either for reading would block.
	if err := os.MkdirAll(filepath.Join(gocache, ids["fifo"].shard()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(gocache, ids["fifo"].name("a")), 0o644); err != nil {
		t.Fatal(err)
	}
	fifoBody := []byte("outside fifod")
	plantEntry(t, gocache, ids["fifod"], fifoBody, old)
	fifoOut, _ := ParseID(outputOf(fifoBody))
	os.Remove(filepath.Join(gocache, fifoOut.name("d")))
	if err := syscall.Mkfifo(filepath.Join(gocache, fifoOut.name("d")), 0o644); err != nil {
		t.Fatal(err)
	}

	before := treeState(t, outside)
	var stats Stats
	st, err := OpenStore(gocache, StoreOptions{Stats: &stats})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !openat2 && st.beneath != nil {
		st.beneath.Close()
		st.beneath = nil
	} else if openat2 && st.beneath == nil {
		t.Skip("no openat2 on this kernel: the os.Root subtest covers the lookups")
	}
	c := startClient(t, st, &stats)
	id := int64(0)
	next := func() int64 { id++; return id }
	for _, n := range names {
		c.send(Request{ID: next(), Command: CmdGet, ActionID: ids[n].Bytes()}, nil)
		if res := c.read(); !res.Miss || res.Err != "" {
			t.Errorf("get %s: %+v, want a miss", n, res)
		}
	}
	for _, bad := range [][]byte{[]byte("../../outside/victim"), make([]byte, 31), make([]byte, 33), nil} {
		c.send(Request{ID: next(), Command: CmdGet, ActionID: bad}, nil)
		if res := c.read(); res.Err == "" {
			t.Errorf("get of ID %q: %+v, want an error", bad, res)
		}
		newBody := []byte("hostile put")
		c.send(Request{ID: next(), Command: CmdPut, ActionID: actionID("ok"), OutputID: bad, BodySize: int64(len(newBody))}, newBody)
		if res := c.read(); res.Err == "" {
			t.Errorf("put with output ID %q: %+v, want an error", bad, res)
		}
	}
	newBody := []byte("new content")
	// A put into the linked shard fails; one over the linked "-a"
	// replaces the link inside DIR.
	c.send(Request{ID: next(), Command: CmdPut, ActionID: ids["shard"].Bytes(), OutputID: outputOf(newBody), BodySize: int64(len(newBody))}, newBody)
	if res := c.read(); res.Err == "" {
		t.Errorf("put into a linked shard: %+v, want an error", res)
	}
	c.send(Request{ID: next(), Command: CmdPut, ActionID: ids["fileshard"].Bytes(), OutputID: outputOf([]byte("x")), BodySize: 1}, []byte("x"))
	if res := c.read(); res.Err == "" {
		t.Errorf("put into a shard that is a file: %+v, want an error", res)
	}
	c.send(Request{ID: next(), Command: CmdPut, ActionID: ids["alink"].Bytes(), OutputID: outputOf(newBody), BodySize: int64(len(newBody))}, newBody)
	if res := c.read(); res.Err != "" || !strings.HasPrefix(res.DiskPath, gocache+"/") {
		t.Errorf("put over a linked -a: %+v", res)
	}
	if fi, err := os.Lstat(filepath.Join(gocache, ids["alink"].name("a"))); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the linked -a is not a regular file after the put: %v, %v", fi, err)
	}
	if err := c.close(next()); err != nil {
		t.Fatal(err)
	}
	if after := treeState(t, outside); after != before {
		t.Errorf("the directory outside DIR changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ents, _ := os.ReadDir(base); len(ents) != 2 {
		t.Errorf("entries next to DIR: %v, want DIR and outside only", ents)
	}
	if r := stats.Report(); r.Hits != 0 {
		t.Errorf("stats %+v: a hostile entry was a hit", r)
	}
}

// TestMalformedStreamEndsSession: an ID that is not base64, or a body that
// is not a JSON string, breaks the stream: Serve stops with an error and
// writes nothing.
func TestMalformedStreamEndsSession(t *testing.T) {
	for name, input := range map[string]string{
		"path as ID": `{"ID":1,"Command":"get","ActionID":"../../../../etc/passwd"}` + "\n",
		"body not a string": fmt.Sprintf(`{"ID":1,"Command":"put","ActionID":%q,"OutputID":%q,"BodySize":4}`+"\n\n{}\n",
			base64.StdEncoding.EncodeToString(actionID("x")), base64.StdEncoding.EncodeToString(outputOf([]byte("body")))),
		"negative size": fmt.Sprintf(`{"ID":1,"Command":"put","ActionID":%q,"BodySize":-1}`+"\n",
			base64.StdEncoding.EncodeToString(actionID("x"))),
		"line too long": strings.Repeat(" ", maxLineSize+1) + "{}\n",
	} {
		t.Run(name, func(t *testing.T) {
			st, dir := openTestStore(t, nil)
			var out bytes.Buffer
			if err := (&Server{Backend: st}).Serve(context.Background(), strings.NewReader(input), &out); err == nil {
				t.Fatalf("Serve accepted %q", input)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("GOCACHE holds %v after a malformed stream", ents)
			}
		})
	}
}

func plantLink(t *testing.T, gocache, name, target string) {
	t.Helper()
	p := filepath.Join(gocache, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// plantRaw writes an "-a" entry for action whose output field is out,
// padded to Go's entry length.
func plantRaw(t *testing.T, gocache string, action ID, out string) {
	t.Helper()
	line := fmt.Sprintf("v1 %s %s %20d %20d\n", action, out, 13, time.Now().UnixNano())
	if len(line) != mount.ActionEntryLen {
		t.Fatalf("planted entry of %d bytes", len(line))
	}
	p := filepath.Join(gocache, action.name("a"))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyOut copies an output from the outside into the cache under its
// (lower-case) name, so only the upper-case "-a" stands between a get and a
// hit.
func copyOut(t *testing.T, from, to string, out []byte) {
	t.Helper()
	id, _ := ParseID(out)
	data, err := os.ReadFile(filepath.Join(from, id.name("d")))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(to, id.name("d"))
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
