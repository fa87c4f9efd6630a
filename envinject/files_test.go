package envinject

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

const filesTestConfig = "package:\n  name: hello\n  version: 1.0.0\n"

// TestFiles: the walk finds YAML below a directory but not in hidden ones;
// Files keeps the argument order with any number of workers, skips
// non-melange YAML, reports bad input per file and, with Write, replaces
// changed files keeping their mode and owner.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", filesTestConfig, 0o640)
	bad := write("b.yml", "package: [\n", 0o644)
	other := write("c.yaml", "name: not melange\n", 0o644)
	write(".git/d.yaml", filesTestConfig, 0o644)
	write("e.txt", filesTestConfig, 0o644)
	if os.Geteuid() == 0 {
		if err := os.Chown(a, 4242, 4343); err != nil {
			t.Fatal(err)
		}
	}

	files, errs := CollectYAML([]string{dir, filepath.Join(dir, "missing.yaml")})
	if want := []string{a, bad, other}; !slices.Equal(files, want) || len(errs) != 1 {
		t.Fatalf("CollectYAML: %q, errors %v; want %q and one error", files, errs, want)
	}
	for _, jobs := range []int{1, 3} {
		res, err := Files(context.Background(), files, FilesOptions{Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 3 || res[0].Name != a || !res[0].Result.Changed || res[1].Err == nil || !res[2].Skipped {
			t.Fatalf("jobs %d: results %+v", jobs, res)
		}
		if !strings.HasPrefix(res[1].Err.Error(), bad+":") {
			t.Errorf("bad input error %q does not start with the file name", res[1].Err)
		}
	}
	if b, _ := os.ReadFile(a); string(b) != filesTestConfig {
		t.Fatalf("Files without Write changed %s", a)
	}

	res, err := Files(context.Background(), []string{a}, FilesOptions{Write: true})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Write: %v, %v", err, res[0].Err)
	}
	b, _ := os.ReadFile(a)
	if string(b) != string(res[0].Result.Out) || !strings.Contains(string(b), DefaultGoCache) {
		t.Errorf("Write left %q", b)
	}
	fi, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v after Write, want 0640 kept", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 4242 || st.Gid != 4343) {
		t.Errorf("owner %d:%d after Write, want 4242:4343 kept", st.Uid, st.Gid)
	}
}

// TestFilesStdin: "-" reads the given reader and is named as gofmt does.
func TestFilesStdin(t *testing.T) {
	res, err := Files(context.Background(), []string{"-"}, FilesOptions{Stdin: strings.NewReader(filesTestConfig)})
	if err != nil || res[0].Err != nil || res[0].Name != StdinName || !res[0].Result.Changed {
		t.Fatalf("stdin: %v, %+v", err, res)
	}
}

// TestSaveEnvFile: the env-file is written whole; a directory is refused.
func TestSaveEnvFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "melcache.env")
	if err := SaveEnvFile(p, []Var{{Key: "GOCACHE", Value: DefaultGoCache}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "GOCACHE="+DefaultGoCache) {
		t.Errorf("env-file holds %q", b)
	}
	if err := SaveEnvFile(dir, nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("SaveEnvFile on a directory: %v", err)
	}
}
