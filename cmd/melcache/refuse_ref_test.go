package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestMalformedRefsRefusedOffline: a malformed reference is a usage error
// (exit 2) naming it, in every command that takes one, and nothing connects
// to the registry it names: a loopback listener at that address counts the
// connections (issue 12: "ghcr.io//bad is accepted and sent to the
// network").
func TestMalformedRefsRefusedOffline(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	host := ln.Addr().String()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "pkg.yaml")
	if err := os.WriteFile(cfg, []byte("package:\n  name: p\n  version: 1.0.0\npipeline:\n  - runs: echo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"MELANGE=/bin/false", "XDG_CACHE_HOME=" + filepath.Join(dir, "xdg")}
	cache := filepath.Join(dir, "cache")
	if _, _, code := cliCode(t, env, "prepare", "--dir", cache); code != 0 {
		t.Fatalf("prepare: exit %d", code)
	}

	// One malformed repository path, tag and port: every command parses
	// them with oci.ParseRef, whose TestParseRef refuses each form below,
	// so -short runs these three through every command and the full suite
	// the rest too.
	refs := []string{host + "//bad", host + "/a:t!", "127.0.0.1:99999/a"}
	if !testing.Short() {
		refs = append(refs, host+"/a//b", host+"/bad/", host+"/-a", host+"/a..b", host+"/Upper", host+"/a:.tag")
	}
	for _, ref := range refs {
		for _, args := range [][]string{
			{"push", "--dir", cache, ref},
			{"pull", "--dir", cache, ref},
			{"pull", "--missing-ok", "--dir", cache, ref},
			{"ls", ref},
			{"inspect", ref},
			{"gc", "--keep-last", "1", ref},
			{"build", cfg, "--dir", cache, "--pull", ref},
			{"build", cfg, "--dir", cache, "--push", ref},
		} {
			if args[0] == "ls" || args[0] == "gc" {
				// These take a repository: a tag is refused anyway.
				if strings.Contains(ref[len(host):], ":") {
					continue
				}
			}
			_, stderr, code := cliCode(t, env, args...)
			if code != 2 || !strings.Contains(stderr, ref) || !strings.Contains(stderr, "invalid reference") {
				t.Errorf("melcache %s: exit %d, stderr %q; want exit 2 naming %s as an invalid reference", strings.Join(args, " "), code, stderr, ref)
			}
		}
		// doctor reports it as a failed check, without probing.
		out, _, code := cliCode(t, env, "doctor", "--dir", cache, ref)
		if code != 1 || !strings.Contains(out, "invalid reference") {
			t.Errorf("doctor %s: exit %d, %q", ref, code, out)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections to %s: malformed references reached the network", n, host)
	}
}
