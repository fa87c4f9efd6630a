package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/melcache/melcache/mount"
)

// testConfig is the smallest melange config Run accepts.
const testConfig = `package:
  name: hello
  version: 1.0.0
environment:
  contents:
    packages:
      - go-1.26
pipeline:
  - uses: go/build
    with:
      packages: .
`

// fakeRunner stands in for melange: it records the command line, may
// write into the cache dir as a build would, and returns a set status.
type fakeRunner struct {
	code  int
	err   error
	calls [][]string
	build func(argv []string) // called before returning, when set
}

func (r *fakeRunner) Run(_ context.Context, argv []string) (int, error) {
	r.calls = append(r.calls, argv)
	if r.build != nil {
		r.build(argv)
	}
	return r.code, r.err
}

// fixture is one build's inputs in a temporary directory.
type fixture struct {
	cfg      Config
	runner   *fakeRunner
	warnings []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "pkg.yaml")
	if err := os.WriteFile(config, []byte(testConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := mount.New(filepath.Join(dir, "cache"), mount.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cfg: Config{Layout: l, Config: config, Melange: "melange"}, runner: &fakeRunner{}}
}

func (f *fixture) run(t *testing.T, ctx context.Context) (*Report, error) {
	t.Helper()
	clock := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	return Run(ctx, f.cfg, Options{
		Runner:      f.runner,
		Now:         func() time.Time { clock = clock.Add(time.Second); return clock },
		Warn:        func(msg string) { f.warnings = append(f.warnings, msg) },
		LockOptions: mount.LockOptions{NoWait: true},
	})
}

// unreachableRegistry is a loopback registry nothing listens on (port 1 is
// reserved): pulling from or pushing to it is a cache problem.
const unreachableRegistry = "127.0.0.1:1/melcache/test"

// badLayout returns an oci: reference whose layout is a regular file, so
// every read of it fails: a cache problem, not a miss.
func badLayout(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "layout")
	if err := os.WriteFile(p, []byte("not a layout"), 0o644); err != nil {
		t.Fatal(err)
	}
	return "oci:" + p + ":tag"
}

func TestRunPullFailsWarnsAndBuilds(t *testing.T) {
	f := newFixture(t)
	f.cfg.Pull = badLayout(t)
	f.runner.code = 3
	rep, err := f.run(t, context.Background())
	if err != nil {
		t.Fatalf("a failed pull failed the build: %v", err)
	}
	if len(f.runner.calls) != 1 {
		t.Fatalf("melange ran %d times, want once", len(f.runner.calls))
	}
	if rep.ExitCode != 3 {
		t.Errorf("exit code %d, want melange's 3", rep.ExitCode)
	}
	if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "pull from") || !strings.Contains(f.warnings[0], "building without it") {
		t.Errorf("warnings %q, want one about the pull", f.warnings)
	}
	if len(rep.Warnings) != len(f.warnings) {
		t.Errorf("report keeps %d warnings, Warn got %d", len(rep.Warnings), len(f.warnings))
	}
}

func TestRunStrictPullFailsBeforeMelange(t *testing.T) {
	f := newFixture(t)
	f.cfg.Pull = badLayout(t)
	f.cfg.Strict = true
	rep, err := f.run(t, context.Background())
	if err == nil || !strings.Contains(err.Error(), "(--strict)") {
		t.Fatalf("Strict pull failure: err %v, want a --strict error", err)
	}
	if len(f.runner.calls) != 0 || rep.ExitCode != -1 {
		t.Errorf("melange ran (%d calls, exit %d) after a Strict cache problem", len(f.runner.calls), rep.ExitCode)
	}
}

func TestRunMelangeFailsNoPush(t *testing.T) {
	f := newFixture(t)
	layout := filepath.Join(t.TempDir(), "out")
	f.cfg.Push = "oci:" + layout
	f.runner.code = 1
	rep, err := f.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExitCode != 1 || rep.Push != nil || !strings.Contains(rep.PushSkipped, "melange failed (exit 1)") {
		t.Errorf("exit %d, push %+v, skipped %q: want no push after a failed build", rep.ExitCode, rep.Push, rep.PushSkipped)
	}
	if _, err := os.Stat(layout); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the push target exists after a failed build: %v", err)
	}
}

func TestRunPushes(t *testing.T) {
	f := newFixture(t)
	f.cfg.Push = "oci:" + filepath.Join(t.TempDir(), "out")
	f.runner.build = func([]string) {
		zip := filepath.Join(f.cfg.Layout.CacheDir(mount.GoModCache), "cache", "download", "example.com", "m", "@v", "v1.0.0.zip")
		if err := os.MkdirAll(filepath.Dir(zip), 0o755); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(zip, []byte("zip"), 0o644); err != nil {
			t.Error(err)
		}
	}
	rep, err := f.run(t, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Push == nil || rep.Push.Tag != DefaultTag {
		t.Fatalf("push %+v, want a push tagged %s", rep.Push, DefaultTag)
	}
	if rep.ModulesDownloaded != 1 || rep.BytesAdded != 3 {
		t.Errorf("measured %d modules and %d bytes, want the 1 zip of 3 bytes the build wrote", rep.ModulesDownloaded, rep.BytesAdded)
	}
	if rep.Hits == nil || rep.Misses == nil {
		t.Errorf("no hits and misses after a marked build")
	}
	if rep.BuildSeconds != 1 {
		t.Errorf("build took %vs by the test clock, want 1s", rep.BuildSeconds)
	}
	argv := strings.Join(f.runner.calls[0], " ")
	if !strings.Contains(argv, "melange build "+f.cfg.Config+" --cache-dir "+f.cfg.Layout.Dir+" --env-file ") {
		t.Errorf("melange command line %q lacks the config, the cache dir or the env-file", argv)
	}
}

func TestRunPushFailsWarns(t *testing.T) {
	f := newFixture(t)
	f.cfg.Push = unreachableRegistry + ":tag"
	rep, err := f.run(t, context.Background())
	if err != nil {
		t.Fatalf("a failed push failed the build: %v", err)
	}
	if rep.ExitCode != 0 || rep.Push != nil {
		t.Errorf("exit %d, push %+v", rep.ExitCode, rep.Push)
	}
	if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "the build's result stands") {
		t.Errorf("warnings %q, want one about the push", f.warnings)
	}
}

func TestRunStrictPushFailsAfterMelange(t *testing.T) {
	f := newFixture(t)
	f.cfg.Push = unreachableRegistry + ":tag"
	f.cfg.Strict = true
	rep, err := f.run(t, context.Background())
	if err == nil || !strings.Contains(err.Error(), "push to") || !strings.Contains(err.Error(), "(--strict)") {
		t.Fatalf("Strict push failure: err %v", err)
	}
	if len(f.runner.calls) != 1 || rep.ExitCode != 0 {
		t.Errorf("melange: %d calls, exit %d; want it run once before the push", len(f.runner.calls), rep.ExitCode)
	}
}

func TestRunBadInputFailsAtOnce(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"pull ref":     func(c *Config) { c.Pull = "oci:" },
		"key":          func(c *Config) { c.Pull, c.Key = "oci:"+t.TempDir(), "{nosuchvar}" },
		"restore keys": func(c *Config) { c.RestoreKeys = []string{"a-{nosuchvar}"} },
		"push digest":  func(c *Config) { c.Push = "oci:" + t.TempDir() + "@sha256:" + strings.Repeat("0", 64) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			mod(&f.cfg)
			_, err := f.run(t, context.Background())
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("err %v (%T), want a *UsageError", err, err)
			}
			if len(f.runner.calls) != 0 {
				t.Errorf("melange ran on bad input")
			}
			if _, err := os.Stat(f.cfg.Layout.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("bad input changed the cache dir: %v", err)
			}
		})
	}
}

func TestRunInterruptedBeforeMelange(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.run(t, ctx)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want an interrupt", err)
	}
	if len(f.runner.calls) != 0 {
		t.Errorf("melange ran after an interrupt")
	}
}

func TestRunRunnerError(t *testing.T) {
	f := newFixture(t)
	f.runner.code, f.runner.err = -1, errors.New("no such binary")
	rep, err := f.run(t, context.Background())
	if err == nil || rep.ExitCode != -1 {
		t.Fatalf("err %v, exit %d: want the runner's error", err, rep.ExitCode)
	}
}

// TestRunPushUsesRestoreKeys: a build's restore keys also pick its push's
// delta base. A fresh cache dir that pulled nothing pushes under a new key
// as a delta of the newest snapshot matching them.
func TestRunPushUsesRestoreKeys(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "out")
	writeZip := func(f *fixture, v string) func([]string) {
		return func([]string) {
			zip := filepath.Join(f.cfg.Layout.CacheDir(mount.GoModCache), "cache", "download", "example.com", "m", "@v", v+".zip")
			if err := os.MkdirAll(filepath.Dir(zip), 0o755); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(zip, []byte("zip "+v), 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	first := newFixture(t)
	first.cfg.Push = "oci:" + layout + ":pkg-1"
	first.runner.build = writeZip(first, "v1.0.0")
	rep1, err := first.run(t, context.Background())
	if err != nil || rep1.Push == nil {
		t.Fatalf("first build: %v, push %+v", err, rep1.Push)
	}

	second := newFixture(t)
	second.cfg.Push = "oci:" + layout + ":pkg-2"
	second.cfg.RestoreKeys = []string{"pkg-"}
	second.runner.build = writeZip(second, "v1.1.0")
	rep2, err := second.run(t, context.Background())
	if err != nil || rep2.Push == nil {
		t.Fatalf("second build: %v, push %+v", err, rep2.Push)
	}
	if rep2.Push.BaseRule != "restore-key pkg-" || rep2.Push.Base != rep1.Push.Digest {
		t.Errorf("push base %q by %q; want %s by restore-key pkg-", rep2.Push.Base, rep2.Push.BaseRule, rep1.Push.Digest)
	}
}
