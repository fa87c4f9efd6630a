package envinject

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
	"gopkg.in/yaml.v3"
)

// FuzzInject checks the rewriter on arbitrary input: it never panics, every
// error has a position (or is ErrNotMelange), its output always parses and
// holds the input's data plus the variables, and a second run changes
// nothing. The seeds (the melange corpus and the golden inputs, plain and
// with CRLF and a BOM) run in every go test.
func FuzzInject(f *testing.F) {
	for _, file := range corpusFiles(f) {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src, uint8(0))
	}
	golden, _ := filepath.Glob("testdata/golden/*.txtar")
	for i, file := range golden {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, af := range ar.Files {
			if af.Name == "in.yaml" {
				f.Add(af.Data, uint8(i))
				f.Add(append([]byte("\xef\xbb\xbf"), bytes.ReplaceAll(af.Data, []byte("\n"), []byte("\r\n"))...), uint8(i+1))
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte, flags uint8) {
		opts := Options{Force: flags&1 != 0, Offline: flags&2 != 0}
		if flags&4 != 0 {
			opts.GoModCache = GuestRoot
		}
		res, err := Inject(src, opts)
		if err != nil {
			var pe *Error
			switch {
			case errors.As(err, &pe):
				if pe.Line < 1 || pe.Col < 1 {
					t.Fatalf("error without a position: %v", err)
				}
			case !errors.Is(err, ErrNotMelange):
				t.Fatalf("error is neither *Error nor ErrNotMelange: %v", err)
			}
			return
		}
		if res.Changed == bytes.Equal(res.Out, src) {
			t.Fatalf("Changed=%v but output equal to input=%v", res.Changed, bytes.Equal(res.Out, src))
		}
		var n yaml.Node
		if err := yaml.Unmarshal(res.Out, &n); err != nil {
			t.Fatalf("output does not parse: %v\ninput:\n%q\noutput:\n%q", err, src, res.Out)
		}
		// Independent data check, where no alias can share the edited map.
		if !bytes.ContainsAny(src, "*&<") {
			vars, _ := DefaultVars(opts)
			m := map[string]string{}
			for _, v := range vars {
				m[v.Key] = v.Value
			}
			var top map[string]any
			if yaml.Unmarshal(src, &top) == nil {
				checkSemanticForce(t, "fuzz", src, res.Out, m, opts.Force)
			}
		}
		again, err := Inject(res.Out, opts)
		if err != nil || again.Changed {
			t.Fatalf("second run: changed=%v err=%v\ninput:\n%q\noutput:\n%q", again.Changed, err, src, res.Out)
		}
	})
}
