package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoveEverythingGuards (issue 11, finding 12a): a limit so short it
// would remove everything — below Go's hourly use-mark refresh for prune,
// below an hour as gc's only rule — is a usage error that changes nothing,
// however it is spelled (1ns used to slip past a check for exactly 0).
func TestRemoveEverythingGuards(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	work := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + filepath.Join(work, "xdg")}
	src := filepath.Join(work, "src")
	fakeCache(t, src, 1)
	layout := "oci:" + filepath.Join(work, "layout")
	cli(t, env, "push", "--dir", src, layout+":kept")

	for _, d := range []string{"1ns", "1s", "59m"} {
		before := treeState(t, src)
		_, errOut, code := cliCode(t, env, "prune", "--dir", src, "--unused-for", d)
		if code != 2 || !strings.Contains(errOut, "removes everything") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("prune --unused-for %s: exit %d, stderr %q; want 2 and one line saying it removes everything", d, code, errOut)
		}
		if treeState(t, src) != before {
			t.Errorf("refused prune --unused-for %s changed the cache", d)
		}

		_, errOut, code = cliCode(t, env, "gc", "--max-age", d, layout)
		if code != 2 || !strings.Contains(errOut, "removes every snapshot") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("gc --max-age %s: exit %d, stderr %q; want 2 and one line saying it removes every snapshot", d, code, errOut)
		}
		if out := cli(t, env, "ls", layout); !strings.Contains(out, "kept") {
			t.Fatalf("gc --max-age %s removed the snapshot: ls says %q", d, out)
		}
	}
	// With --keep-last something always stays, so a short age is fine.
	cli(t, env, "gc", "--max-age", "1ns", "--keep-last", "1", layout)
	if out := cli(t, env, "ls", layout); !strings.Contains(out, "kept") {
		t.Fatalf("gc --keep-last 1 removed the only snapshot: ls says %q", out)
	}
	// An hour is accepted by both.
	cli(t, env, "prune", "--dir", src, "--unused-for", "1h")
	cli(t, env, "gc", "--max-age", "1h", "--dry-run", layout)
}
