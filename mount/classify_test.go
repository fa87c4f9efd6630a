package mount

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/internal/testenv"
)

// TestClassifyOutput: each output class by its first bytes, and the
// near-misses that are not it.
func TestClassifyOutput(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          OutputClass
	}{
		{"archive", "!<arch>\n__.PKGDEF          0           0     0     644     1234      `\ngo object", OutputArchive},
		{"bare archive magic", "!<arch>\n", OutputArchive},
		{"module index", "go index v2\n\x00\x00\x00\x01", OutputModIndex},
		{"module index, no newline", "go index v2", OutputModIndex},
		{"ELF executable", "\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00", OutputExecutable},
		{"empty", "", OutputOther},
		{"truncated archive magic", "!<arch>", OutputOther},
		{"old module index", "go index v1\n", OutputOther},
		{"test output", "ok  \texample.com/m\t0.01s\n", OutputOther},
		{"vet output", "{}\n", OutputOther},
		{"archive magic later", "x!<arch>\n", OutputOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassifyOutput(strings.NewReader(tc.content)); got != tc.want {
				t.Errorf("ClassifyOutput(%q) = %v, want %v", tc.content, got, tc.want)
			}
		})
	}
}

// TestClassifyAction: an "-a" entry is classified by the "-d" it names; a
// directory output is an executable (Go 1.24+); a missing output or a link
// planted in place of one is other; a malformed "-a" is an error.
func TestClassifyAction(t *testing.T) {
	gc := filepath.Join(t.TempDir(), "gocache")
	now := time.Now()
	arch, _ := putEntry(t, gc, "!<arch>\nsome package", now, now)
	idx, _ := putEntry(t, gc, "go index v2\nstd", now, now)
	exe, exeOut := putEntry(t, gc, "\x7fELF but soon a dir", now, now)
	gone, goneOut := putEntry(t, gc, "!<arch>\ntrimmed", now, now)
	link, linkOut := putEntry(t, gc, "text", now, now)
	for _, p := range []string{exeOut, goneOut, linkOut} {
		os.Remove(p)
	}
	os.MkdirAll(filepath.Join(exeOut, "bin"), 0o755)
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("!<arch>\n"), 0o644)
	os.Symlink(target, linkOut)
	for p, want := range map[string]OutputClass{arch: OutputArchive, idx: OutputModIndex, exe: OutputExecutable, gone: OutputOther, link: OutputOther} {
		got, err := ClassifyAction(gc, p)
		if err != nil || got != want {
			t.Errorf("ClassifyAction(%s) = %v, %v; want %v", filepath.Base(p), got, err, want)
		}
	}
	bad := filepath.Join(gc, "00", strings.Repeat("0", 64)+"-a")
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, []byte("v1 short\n"), 0o644)
	if _, err := ClassifyAction(gc, bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("malformed -a entry: err %v, want one naming %s", err, bad)
	}
	if _, err := ClassifyAction(gc, strings.TrimSuffix(bad, "-a")+"-d"); err == nil {
		t.Errorf("an output (-d) given as an action entry: no error")
	}
}

// TestUseClasses: Use counts each class apart, and tells a first build into
// an empty cache from a build into a cache that had entries.
func TestUseClasses(t *testing.T) {
	ctx := context.Background()
	l, err := New(filepath.Join(testenv.TempDir(t), "mc"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prepare(ctx, PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	gc := l.CacheDir(GoCache)
	t0 := time.Now()
	rec, err := l.Mark(ctx, MarkOptions{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	after := t0.Add(time.Minute)
	putEntry(t, gc, "!<arch>\npkg a", after, after)
	putEntry(t, gc, "!<arch>\npkg b", after, after)
	putEntry(t, gc, "go index v2\nfmt", after, after)
	putEntry(t, gc, "test output", after, after)
	u, err := l.Use(rec.Time)
	if err != nil {
		t.Fatal(err)
	}
	want := BuildUse{Since: t0, Hits: 0, Misses: 4, CompileActions: ActionUse{Run: 2}, ModuleIndex: ActionUse{Run: 1},
		Other: ActionUse{Run: 1}, EmptyBefore: true}
	if !u.Since.Equal(t0) {
		t.Fatalf("since %v, want %v", u.Since, t0)
	}
	u.Since = want.Since
	if *u != want {
		t.Fatalf("first build: %+v, want %+v", *u, want)
	}
	// The next build: the entries above are marked back; one archive is
	// reused, the index rewritten (a new entry), nothing compiled.
	t1 := after.Add(2 * time.Hour)
	rec, err = l.Mark(ctx, MarkOptions{Now: func() time.Time { return t1 }})
	if err != nil {
		t.Fatal(err)
	}
	putEntry(t, gc, "!<arch>\npkg a", t1.Add(time.Minute), after)
	putEntry(t, gc, "go index v2\nfmt, new mtimes", t1.Add(time.Minute), t1.Add(time.Minute))
	u, err = l.Use(rec.Time)
	if err != nil {
		t.Fatal(err)
	}
	if u.EmptyBefore || u.CompileActions != (ActionUse{Reused: 1}) || u.ModuleIndex != (ActionUse{Run: 1}) {
		t.Fatalf("rebuild: %+v, want 1 compile reused, 1 index written, not empty before", *u)
	}
	if s := u.Summary(); !strings.HasPrefix(s, "compile actions: 0 run, 1 reused; ") || !strings.Contains(s, "module index 1 written") {
		t.Errorf("summary %q", s)
	}
}

// TestUseRealRebuild: a rebuild of the real-cache fixture after touching
// nothing runs no compile action; module-index entries, which `go list`
// writes for a package whose files have new mtimes, are counted apart and
// not as compile actions.
func TestUseRealRebuild(t *testing.T) {
	ctx := context.Background()
	l := realCache(t)
	env := goEnv(l, "GOPROXY=off", "GOFLAGS=-mod=readonly")
	rec, err := l.Mark(ctx, MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, out := testenv.GoBuild(t, testenv.RealCacheModule(), env, ".")
	if n != 0 {
		t.Fatalf("rebuild compiled %d packages:\n%s", n, out)
	}
	u, err := l.Use(rec.Time)
	if err != nil {
		t.Fatal(err)
	}
	if u.CompileActions.Run != 0 || u.CompileActions.Reused == 0 || u.EmptyBefore {
		t.Fatalf("rebuild: %+v, want 0 compile actions run, some reused, a cache that had entries", *u)
	}
	t.Logf("rebuild: %s", u.Summary())

	// A package whose files' mtimes are new but past Go's 2 s cutoff
	// (modindex dirHash): go list indexes it. Then new mtimes again: a
	// new index entry, still no compile action.
	src := filepath.Join(testenv.TempDir(t), "idx")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/idx\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "idx.go"), []byte("package idx\n\nimport _ \"strings\"\n"), 0o644)
	for i, age := range []time.Duration{time.Hour, 30 * time.Minute} {
		for _, f := range []string{"go.mod", "idx.go"} {
			mt := time.Now().Add(-age)
			if err := os.Chtimes(filepath.Join(src, f), mt, mt); err != nil {
				t.Fatal(err)
			}
		}
		rec, err := l.Mark(ctx, MarkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "list", "-e", "./...")
		cmd.Dir, cmd.Env = src, env.Environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		u, err := l.Use(rec.Time)
		if err != nil {
			t.Fatal(err)
		}
		if u.ModuleIndex.Run == 0 || u.CompileActions.Run != 0 || u.EmptyBefore {
			t.Fatalf("go list %d: %+v, want module-index entries written and no compile action", i, *u)
		}
		t.Logf("go list %d: %s", i, u.Summary())
	}
}
