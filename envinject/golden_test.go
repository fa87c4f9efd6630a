package envinject

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the out.yaml and report sections of testdata/golden (review the diff!)")

// TestGolden runs each testdata/golden/*.txtar: in.yaml through Inject must
// give exactly out.yaml and the report (kept values, findings, or error).
// The archive comment may hold one line "opts: ..." with words:
//
//	force offline gomodcache=P gocache=P set=K=V   Inject options
//	crlf bom nofinalnl                            transform in and out
//	nosemantic                                    data check by Inject only
//	                                              (an alias shares the env)
//	nolinecheck                                   the changed line is not a
//	                                              "KEY: value" line (one-line
//	                                              flow file, "? key" syntax)
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.txtar")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sec := map[string][]byte{}
			for _, f := range ar.Files {
				sec[f.Name] = f.Data
			}
			var opts Options
			words := map[string]bool{}
			for _, line := range strings.Split(string(ar.Comment), "\n") {
				rest, ok := strings.CutPrefix(line, "opts:")
				if !ok {
					continue
				}
				for _, w := range strings.Fields(rest) {
					k, v, _ := strings.Cut(w, "=")
					switch k {
					case "force":
						opts.Force = true
					case "offline":
						opts.Offline = true
					case "gomodcache":
						opts.GoModCache = v
					case "gocache":
						opts.GoCache = v
					case "set":
						vr, err := ParseVar(v)
						if err != nil {
							t.Fatal(err)
						}
						opts.Set = append(opts.Set, vr)
					default:
						words[k] = true
					}
				}
			}
			transform := func(b []byte) []byte {
				if words["crlf"] {
					b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
				}
				if words["nofinalnl"] {
					b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
				}
				if words["bom"] {
					b = append([]byte("\xef\xbb\xbf"), b...)
				}
				return b
			}
			in := transform(sec["in.yaml"])
			res, err := Inject(in, opts)
			var report bytes.Buffer
			if err != nil {
				fmt.Fprintf(&report, "error: %v\n", err)
			}
			for _, k := range res.Kept {
				fmt.Fprintf(&report, "kept %d:%d %s=%s want %s\n", k.Line, k.Col, k.Key, k.Value, k.Want)
			}
			for _, f := range res.Findings {
				fmt.Fprintf(&report, "finding %s\n", f)
			}
			if *update {
				for i, f := range ar.Files {
					switch f.Name {
					case "out.yaml":
						ar.Files[i].Data = sec["in.yaml"]
						if err == nil {
							ar.Files[i].Data = untransform(res.Out, words)
						}
					case "report":
						ar.Files[i].Data = report.Bytes()
					}
				}
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got, want := report.String(), string(sec["report"]); got != want {
				t.Errorf("report:\ngot:\n%s\nwant:\n%s", got, want)
			}
			if err != nil {
				if !bytes.Equal(sec["out.yaml"], sec["in.yaml"]) {
					t.Errorf("an error case must have out.yaml equal to in.yaml (the file is left alone)")
				}
				var pe *Error
				if !errors.As(err, &pe) && !errors.Is(err, ErrNotMelange) {
					t.Errorf("error %v has no position", err)
				}
				return
			}
			want := transform(sec["out.yaml"])
			if !bytes.Equal(res.Out, want) {
				t.Errorf("output differs from out.yaml:\n%s", Diff("want", "got", want, res.Out))
			}
			if res.Changed != !bytes.Equal(in, res.Out) {
				t.Errorf("Changed = %v, but output equal to input = %v", res.Changed, bytes.Equal(in, res.Out))
			}
			vars, _ := DefaultVars(opts)
			m := map[string]string{}
			var keys []string
			for _, v := range vars {
				m[v.Key] = v.Value
				keys = append(keys, v.Key)
			}
			if !words["nolinecheck"] {
				checkOnlyEnvLines(t, file, in, res.Out, keys, opts.Force)
			}
			if !words["nosemantic"] {
				checkSemanticForce(t, file, in, res.Out, m, opts.Force)
			}
			again, err := Inject(res.Out, opts)
			if err != nil || again.Changed {
				t.Errorf("second run: changed=%v err=%v", again.Changed, err)
			}
		})
	}
}

// untransform undoes transform for -update.
func untransform(b []byte, words map[string]bool) []byte {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if words["crlf"] {
		b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	}
	if words["nofinalnl"] {
		b = append(b, '\n')
	}
	return b
}
