package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
)

// benchConfigs is the size of the generated repository: about wolfi-dev/os.
const benchConfigs = 4000

var (
	nameRE = regexp.MustCompile(`(?m)^(  name: )(\S+)`)
	pkgRE  = regexp.MustCompile(`(?m)^package:`)
)

// writeBenchRepo writes n melange configs into dir: copies of the
// real corpus with distinct package names, every seventh one with CRLF line
// endings, plus the corpus's non-melange pipeline files once each.
func writeBenchRepo(tb testing.TB, dir string, n int) {
	tb.Helper()
	corpus := testenv.Shared(tb, "corpus/melange")
	files, _ := filepath.Glob(filepath.Join(corpus, "*.yaml"))
	if len(files) == 0 {
		tb.Fatalf("no melange configs in %s", corpus)
	}
	var srcs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if !pkgRE.Match(b) {
			// A pipeline file: kept once, to be skipped.
			if err := os.WriteFile(filepath.Join(dir, "pipeline-"+filepath.Base(f)), b, 0o644); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		srcs = append(srcs, b)
	}
	for i := 0; i < n; i++ {
		b := nameRE.ReplaceAll(srcs[i%len(srcs)], []byte(fmt.Sprintf("${1}${2}-%d", i)))
		if i%7 == 0 {
			b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("pkg-%04d.yaml", i)), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkInject runs `melcache inject` over a generated repository of
// 4,000 configs through the CLI code path (flag parsing, directory walk,
// worker pool, output), reporting files per second:
//
//	go test -run '^$' -bench BenchmarkInject -benchtime 5x ./cmd/melcache
func BenchmarkInject(b *testing.B) {
	for _, mode := range []string{"-w", "--check", "-d"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			writeBenchRepo(b, dir, benchConfigs)
			files := 0
			for i := 0; i < b.N; i++ {
				if mode == "-w" && i > 0 {
					b.StopTimer()
					os.RemoveAll(dir)
					os.Mkdir(dir, 0o755)
					writeBenchRepo(b, dir, benchConfigs)
					b.StartTimer()
				}
				var errb bytes.Buffer
				g := &globals{stdin: bytes.NewReader(nil), stdout: io.Discard, stderr: &errb}
				code := run(context.Background(), g, []string{"inject", "-q", mode, dir})
				if want := map[string]int{"-w": 0, "--check": 3, "-d": 0}[mode]; code != want {
					b.Fatalf("exit %d, want %d: %s", code, want, errb.Bytes())
				}
				files += benchConfigs
			}
			b.ReportMetric(float64(files)/b.Elapsed().Seconds(), "files/s")
		})
	}
}

// TestInjectBulk checks a bulk run end to end: every generated config is
// listed, in the same order with one worker or many, rewritten by -w, and a
// second run over the tree finds nothing to do.
func TestInjectBulk(t *testing.T) {
	const n = 400 // enough for every worker to take many files
	dir := t.TempDir()
	writeBenchRepo(t, dir, n)
	run1 := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		g := &globals{stdin: bytes.NewReader(nil), stdout: &out, stderr: &errb}
		return run(context.Background(), g, append([]string{"inject"}, args...)), out.String(), errb.String()
	}
	code, out, errs := run1("-l", dir)
	if code != 0 || bytes.Count([]byte(out), []byte("\n")) != n {
		t.Fatalf("-l: exit %d, %d lines listed, want %d; stderr: %s", code, bytes.Count([]byte(out), []byte("\n")), n, errs)
	}
	// Output order is the walk order whatever the number of workers.
	if _, serial, _ := run1("-l", "--jobs", "1", dir); serial != out {
		t.Errorf("-l --jobs 1 lists files in another order than -l")
	}
	if code, _, errs := run1("-w", "--jobs", "4", dir); code != 0 {
		t.Fatalf("-w: exit %d: %s", code, errs)
	}
	if code, out, errs := run1("-l", dir); code != 0 || out != "" {
		t.Fatalf("second -l: exit %d, listed %q: %s", code, out, errs)
	}
}
