package main

// Issue 12, "A failed command changes nothing": every command, given bad
// input, exits non-zero with a one-line error and leaves its working dir
// (and TMPDIR) exactly as it was.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// badYAML is a melange config that does not parse.
const badYAML = "package:\n  name: x\n  version: [1\n"

// minimalConfig is a melange config that parses, for build's broken pipe.
const minimalConfig = "package:\n  name: hello\n  version: 1.0.0\n  epoch: 0\npipeline:\n  - runs: echo hi\n"

// failCase is one failing invocation run in a scratch dir.
type failCase struct {
	name  string
	args  []string
	setup func(t *testing.T, scratch string) // before the "before" snapshot
}

func TestFailedCommandChangesNothing(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	dead := deadLoopbackAddr(t)
	cases := []failCase{
		{name: "prepare", args: []string{"prepare", "--dir", "nope/deeper"}},
		{name: "prepare-owner", args: []string{"prepare", "--dir", "cache", "--owner", "not-a-uid"}},
		{name: "inject", args: []string{"inject", "-w", "bad.yaml"}},
		{name: "status", args: []string{"status", "--dir", "afile"}},
		{name: "mark", args: []string{"mark", "--dir", "afile"}},
		{name: "cacheprog", args: []string{"cacheprog", "--dir", "afile"}},
		{name: "cacheprog-ref", args: []string{"cacheprog", "--dir", "cache", "oci:layout:t"}},
		{name: "prune", args: []string{"prune", "--dir", "cache", "--max-size", "lots"}},
		{name: "verify", args: []string{"verify", "--dir", "afile"}},
		{name: "clean", args: []string{"clean", "--dir", "afile"}},
		{name: "push", args: []string{"push", "--dir", "cache", dead + "/acme/cache:t"}},
		{name: "push-bad-ref", args: []string{"push", "--dir", "cache", "ghcr.io//bad"}},
		{name: "pull-unreachable", args: []string{"pull", "--dir", "cache", dead + "/acme/cache:t"}},
		// A fetched and checked snapshot, but DIR's parent is missing:
		// pull creates at most DIR, as prepare does.
		{name: "pull-missing-parent", args: []string{"pull", "--dir", "nope/deeper", "oci:layout:t"}, setup: pushLayout},
		// DIR is made, then a corrupt layer fails the restore: the
		// DIR pull made is removed and the parent's mtime restored.
		{name: "pull-corrupt-layer", args: []string{"pull", "--dir", "newdir", "oci:layout:t"}, setup: pushCorruptLayout},
		{name: "ls", args: []string{"ls", dead + "/acme/cache"}},
		{name: "inspect", args: []string{"inspect", dead + "/acme/cache:t"}},
		{name: "gc", args: []string{"gc", "--max-age", "soon", dead + "/acme/cache"}},
		{name: "preload", args: []string{"preload", "bad.yaml"}},
		{name: "preload-source", args: []string{"preload", "--source", "nope"}},
		{name: "build", args: []string{"build", "bad.yaml"}},
		{name: "build-unreachable", args: []string{"build", "ok.yaml", "--strict", "--pull", dead + "/acme/cache:t", "--melange", "/bin/false"}},
		{name: "doctor", args: []string{"doctor", "--owner", "not-a-uid"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			scratch := t.TempDir()
			writeTestFile(t, filepath.Join(scratch, "bad.yaml"), badYAML)
			writeTestFile(t, filepath.Join(scratch, "ok.yaml"), minimalConfig)
			writeTestFile(t, filepath.Join(scratch, "afile"), "not a directory\n")
			mkCache(t, filepath.Join(scratch, "cache"), 1, 3, 256)
			if c.setup != nil {
				c.setup(t, scratch)
			}
			tmp := t.TempDir()
			before := dirState(t, scratch)

			r := runIn(t, scratch, tmp, c.args...)

			if r.code == 0 {
				t.Fatalf("melcache %s: exit 0, want a failure\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), r.stdout, r.stderr)
			}
			if lines := errorLines(r.stderr); len(lines) != 1 {
				t.Errorf("melcache %s: want a one-line error on stderr, got %d lines:\n%s", strings.Join(c.args, " "), len(lines), r.stderr)
			}
			if after := dirState(t, scratch); after != before {
				t.Errorf("melcache %s (exit %d: %s) changed the working dir:\n%s", strings.Join(c.args, " "), r.code, strings.TrimSpace(r.stderr), stateDiff(before, after))
			}
			// TMPDIR's own mtime may change: a temporary dir made and
			// removed is no change.
			if left := tmpEntries(t, tmp); len(left) > 0 {
				t.Errorf("melcache %s left %s in TMPDIR", strings.Join(c.args, " "), strings.Join(left, ", "))
			}
		})
	}
}

// TestBuildBrokenPipeRemovesTempDir: a reader that goes away (melcache
// build 2>&1 | head -1) must not kill build before it removes its
// temporary dir (melcache.env). SIGPIPE is handled: writes fail instead.
func TestBuildBrokenPipeRemovesTempDir(t *testing.T) {
	scratch, tmp := t.TempDir(), t.TempDir()
	writeTestFile(t, filepath.Join(scratch, "ok.yaml"), minimalConfig)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close() // every write to stdout or stderr now raises SIGPIPE
	defer pw.Close()
	cmd := exec.Command(melcacheBin(t), "build", "ok.yaml", "--melange", "/bin/true")
	cmd.Dir = scratch
	cmd.Env = append(baseEnv(t), "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Errorf("melcache build was killed by %v writing to a closed pipe", ws.Signal())
		}
	} else if err != nil {
		t.Fatal(err)
	}
	if left := tmpEntries(t, tmp); len(left) > 0 {
		t.Errorf("melcache build left %s in TMPDIR", strings.Join(left, ", "))
	}
}

// tmpEntries lists what is in the private TMPDIR tmp (made empty).
func tmpEntries(t *testing.T, tmp string) []string {
	t.Helper()
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, filepath.Join(tmp, e.Name()))
	}
	return names
}

// runIn runs melcache in dir with TMPDIR=tmp.
func runIn(t *testing.T, dir, tmp string, args ...string) runResult {
	t.Helper()
	return mrunIn(t, dir, []string{"TMPDIR=" + tmp}, args...)
}

// errorLines are stderr's lines without cobra's usage hint, which follows
// the one-line error of a usage mistake.
func errorLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if l == "" || (strings.HasPrefix(l, "run '") && strings.HasSuffix(l, "--help' for usage")) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// pushLayout pushes scratch/cache to the OCI layout scratch/layout, tag t.
func pushLayout(t *testing.T, scratch string) {
	t.Helper()
	if r := runIn(t, scratch, t.TempDir(), "push", "--dir", "cache", "oci:layout:t"); r.code != 0 {
		t.Fatalf("push: exit %d: %s", r.code, r.stderr)
	}
}

// pushCorruptLayout is pushLayout with the largest blob (a layer)
// overwritten by as many other bytes.
func pushCorruptLayout(t *testing.T, scratch string) {
	t.Helper()
	pushLayout(t, scratch)
	blobs := filepath.Join(scratch, "layout", "blobs", "sha256")
	ents, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	var big string
	var size int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Size() > size {
			big, size = filepath.Join(blobs, e.Name()), fi.Size()
		}
	}
	if err := os.WriteFile(big, bytes.Repeat([]byte{'x'}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// deadLoopbackAddr is a loopback address nothing listens on: a port just
// released.
func deadLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// dirState lists every entry under root (root itself included): path,
// type and mode, size, content hash (link target) and mtime, one a line.
func dirState(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sum := "-"
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			sum = hex.EncodeToString(h[:8])
		case fi.Mode()&fs.ModeSymlink != 0:
			sum, _ = os.Readlink(p)
		}
		lines = append(lines, fmt.Sprintf("%s %v %d %s %d", rel, fi.Mode(), fi.Size(), sum, fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
