package oci

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	root := t.TempDir()
	cases := []struct {
		in                     string
		kind                   RefKind
		str, tag, digest, path string
	}{
		{in: "", kind: RefEmbedded, path: root},
		{in: "127.0.0.1:5000/cache", kind: RefRegistry, str: "127.0.0.1:5000/cache"},
		{in: "127.0.0.1:5000/cache:go-1.26", kind: RefRegistry, str: "127.0.0.1:5000/cache:go-1.26", tag: "go-1.26"},
		{in: "ghcr.io/org/cache@" + dg, kind: RefRegistry, str: "ghcr.io/org/cache@" + dg, digest: dg},
		{in: "ghcr.io/org/cache:t1@" + dg, kind: RefRegistry, str: "ghcr.io/org/cache:t1@" + dg, tag: "t1", digest: dg},
		{in: "docker://127.0.0.1:5000/cache:t", kind: RefRegistry, str: "127.0.0.1:5000/cache:t", tag: "t"},
		{in: "localhost:5000/a/b/c:x", kind: RefRegistry, str: "localhost:5000/a/b/c:x", tag: "x"},
		{in: "ghcr.io/a.b-c__d--e_f/x9:T_1.a-b", kind: RefRegistry, str: "ghcr.io/a.b-c__d--e_f/x9:T_1.a-b", tag: "T_1.a-b"},
		{in: "[::1]:5000/c", kind: RefRegistry, str: "[::1]:5000/c"},
		{in: "My-Registry.example.com/c", kind: RefRegistry, str: "My-Registry.example.com/c"},
		{in: "busybox", kind: RefRegistry, str: "index.docker.io/library/busybox"},
		{in: "oci:/tmp/lay", kind: RefLayout, str: "oci:/tmp/lay", path: "/tmp/lay"},
		{in: "oci:/tmp/lay:v1", kind: RefLayout, str: "oci:/tmp/lay:v1", path: "/tmp/lay", tag: "v1"},
		{in: "oci:/tmp/lay@" + dg, kind: RefLayout, path: "/tmp/lay", digest: dg},
	}
	for _, c := range cases {
		r, err := ParseRef(c.in, RefOptions{EmbeddedRoot: root})
		if err != nil {
			t.Errorf("ParseRef(%q): %v", c.in, err)
			continue
		}
		if r.Kind != c.kind || r.Tag != c.tag || r.Digest != c.digest || r.Path != c.path {
			t.Errorf("ParseRef(%q) = kind %v tag %q digest %q path %q; want %v %q %q %q", c.in, r.Kind, r.Tag, r.Digest, r.Path, c.kind, c.tag, c.digest, c.path)
		}
		if c.str != "" && r.String() != c.str {
			t.Errorf("ParseRef(%q).String() = %q, want %q", c.in, r.String(), c.str)
		}
	}
	// A relative layout path is made absolute.
	r, err := ParseRef("oci:rel/dir:t", RefOptions{})
	if err != nil || !filepath.IsAbs(r.Path) || r.Tag != "t" {
		t.Errorf("relative layout: %+v, %v", r, err)
	}
	// Bad references name the input.
	for _, bad := range []string{"oci:", "oci:/x:", "oci:/x:-bad", "127.0.0.1:5000/x:bad tag", "Host/UPPER", "127.0.0.1:5000/x@sha256:short", "127.0.0.1:5000/x:" + strings.Repeat("a", 129),
		// issue 12: malformed names go-containerregistry lets through.
		"ghcr.io//bad", "ghcr.io/a//b", "ghcr.io/bad/", "/bad", "ghcr.io/-a", "ghcr.io/a-", "ghcr.io/a..b", "ghcr.io/a___b",
		"ghcr.io/_a", "ghcr.io/a/.b", "ghcr.io/a.-b", "ghcr.io/Upper", "ghcr.io:99999/a", "ghcr.io:0/a", "gh_cr.io/a", "-ghcr.io/a",
		"ghcr.io/a:", "ghcr.io/a:.t", "ghcr.io/a:t@", "ghcr.io/a:t!"} {
		_, err := ParseRef(bad, RefOptions{})
		if err == nil {
			t.Errorf("ParseRef(%q) succeeded, want error", bad)
		} else if !strings.Contains(err.Error(), bad) && !strings.Contains(err.Error(), "tag") {
			t.Errorf("ParseRef(%q) error does not name it: %v", bad, err)
		}
	}
}

func TestOpenStoreKinds(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, c := range []struct{ in, want, tag string }{
		{"", "embedded store " + root, ""},
		{"oci:" + root + "/l:t", "oci:" + root + "/l", "t"},
		{"127.0.0.1:1/x:t", "127.0.0.1:1/x", "t"},
	} {
		r, err := ParseRef(c.in, RefOptions{EmbeddedRoot: root})
		if err != nil {
			t.Fatal(err)
		}
		s, tag, err := OpenStore(ctx, r, StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.String() != c.want || tag != c.tag {
			t.Errorf("OpenStore(%q) = %q tag %q, want %q tag %q", c.in, s.String(), tag, c.want, c.tag)
		}
	}
	if _, _, err := OpenStore(ctx, Ref{Raw: "x"}, StoreOptions{}); err == nil {
		t.Error("OpenStore of a zero Ref succeeded")
	}
}
