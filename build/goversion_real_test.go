package build

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
)

// TestGoResolverRealAPKIndex reads {go} from an APKINDEX.tar.gz made by the
// real melange (`melange index`, signed: a signature part, then the index),
// as the README's flow with ../shared/melange passes it: an unpinned go and
// --repository-append DIR. The repository's go is /usr/local/go; it is
// built once per machine (melangetest.RealMelange).
func TestGoResolverRealAPKIndex(t *testing.T) {
	repo := melangetest.RealMelange(t).Repo

	cfg := writeYAML(t, "      - busybox\n      - go\n", "")
	got, err := NewGoResolver(GoVersionOptions{Config: cfg, Repositories: []string{repo}, Arch: "x86_64"}).Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// build-apkrepo.sh packages /usr/local/go as go-VERSION-r0.
	b, err := os.ReadFile("/usr/local/go/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	want, err := ParseGoVersion(first)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("{go} = %q from the real index, want %q (/usr/local/go's %s)", got, want, first)
	}
}
