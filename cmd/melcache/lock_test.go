package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/mount"
)

// TestLockWaitAndNoWait: a second writer started while another process holds
// the cache lock waits, saying which pid holds it, and proceeds once the
// lock is released; with --no-wait it exits 1 at once naming the holder.
// The holder is this test process; the writers are melcache processes.
func TestLockWaitAndNoWait(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "mc")
	if out, err := exec.Command("melcache", "prepare", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("prepare: %v\n%s", err, out)
	}
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	held, err := l.Lock(ctx, mount.Shared, mount.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	holder := fmt.Sprintf("pid %d (shared)", os.Getpid())

	// --no-wait: exit 1 at once, naming the holder.
	for _, args := range [][]string{
		{"prepare", "--dir", dir, "--no-wait"},
		{"prune", "--dir", dir, "--no-wait"},
		{"clean", "--dir", dir, "--no-wait"},
		{"verify", "--repair", "--dir", dir, "--no-wait"},
	} {
		cmd := exec.Command("melcache", args...)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
			t.Fatalf("melcache %v: %v, want exit 1\n%s", args, err, out)
		}
		want := fmt.Sprintf("melcache: cache directory %s is locked by %s; not waiting (--no-wait)\n", dir, holder)
		if string(out) != want {
			t.Errorf("melcache %v said %q, want %q", args, out, want)
		}
	}
	// status takes no lock and names the holder.
	out, err := exec.Command("melcache", "status", "--dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "locked by "+holder) {
		t.Errorf("status while locked: %v\n%s", err, out)
	}
	// A reader (verify without --repair) shares the lock with a build.
	if out, err := exec.Command("melcache", "verify", "--dir", dir, "--no-wait").CombinedOutput(); err != nil {
		t.Fatalf("verify under a shared lock: %v\n%s", err, out)
	}

	// Without --no-wait the writer waits, says for whom, and runs once the
	// lock is free. clean then removes the caches: proof it ran after.
	cmd := exec.Command("melcache", "clean", "--dir", dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the waiting writer's stderr: %v", err)
	}
	if want := fmt.Sprintf("melcache: waiting for the lock on %s, held by %s\n", dir, holder); line != want {
		t.Fatalf("waiting writer said %q, want %q", line, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "gocache", "README")); err != nil {
		t.Fatalf("the waiting clean ran under the lock: %v", err)
	}
	held.Unlock()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("writer after release: %v", err)
		}
	case <-time.After(time.Minute): // a safety net against a hang, not a timing assertion
		cmd.Process.Kill()
		t.Fatal("writer still waiting a minute after the lock was released")
	}
	if _, err := os.Stat(filepath.Join(dir, "gocache", "README")); err == nil {
		t.Fatal("clean did not run after the lock was released")
	}
	if hs, _ := l.Holders(); len(hs) != 0 {
		t.Errorf("holders left: %v", hs)
	}
}
