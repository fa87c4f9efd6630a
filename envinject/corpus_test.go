package envinject

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"gopkg.in/yaml.v3"
)

// corpusFiles returns the real melange configs the tests run over. The
// corpus lives in the shared data directory (testenv.Shared): without it
// the test skips, under CI=true it fails.
func corpusFiles(t testing.TB) []string {
	t.Helper()
	dir := testenv.Shared(t, "corpus/melange")
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no melange configs in %s: %v", dir, err)
	}
	return files
}

var hasPackage = regexp.MustCompile(`(?m)^package:`)

// envLine matches the only lines injection may add or change: the
// environment keys and the variables (quoted or not), or a blank separator.
func envLine(keys []string) *regexp.Regexp {
	return regexp.MustCompile(`^\s*(["']?(environment|` + strings.Join(keys, "|") + `)["']?:.*)?$`)
}

func TestCorpus(t *testing.T) {
	configs := 0
	for _, f := range corpusFiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		r, err := Inject(src, Options{})
		if errors.Is(err, ErrNotMelange) {
			if hasPackage.Match(src) {
				t.Errorf("%s: has package: but was skipped as not a melange config", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		configs++
		if !r.Changed {
			t.Errorf("%s: not changed", name)
		}
		checkOnlyEnvLines(t, name, src, r.Out, []string{"GOMODCACHE", "GOCACHE"}, false)
		checkSemantic(t, name, src, r.Out, map[string]string{"GOMODCACHE": DefaultGoModCache, "GOCACHE": DefaultGoCache})
		r2, err := Inject(r.Out, Options{})
		if err != nil || r2.Changed || !bytes.Equal(r2.Out, r.Out) {
			t.Errorf("%s: second run changed something (err %v)", name, err)
		}
	}
	if configs < 50 {
		t.Errorf("only %d corpus configs took the injection", configs)
	}
	t.Logf("%d corpus configs injected", configs)
}

// checkOnlyEnvLines checks that every added or changed line is an env line
// setting one of keys. Line terminators are ignored here (a last line
// without one gains one when lines follow it); the golden files check the
// exact bytes. With force, replaced values may drop their lines.
func checkOnlyEnvLines(t *testing.T, name string, a, b []byte, keys []string, force bool) {
	t.Helper()
	re := envLine(keys)
	trim := func(b []byte) []byte {
		ls := splitLines(b)
		for i := range ls {
			ls[i] = append(bytes.TrimRight(ls[i], "\r\n"), '\n')
		}
		return bytes.Join(ls, nil)
	}
	d := Diff("a", "b", trim(a), trim(b))
	if d == nil {
		return
	}
	for _, l := range splitLines(d)[3:] { // after "diff a b", "--- a", "+++ b"
		l = bytes.TrimSuffix(l, []byte("\n"))
		if bytes.HasPrefix(l, []byte("@@")) {
			continue
		}
		kind, line := l[0], l[1:]
		if kind == ' ' || (force && kind == '-') {
			continue
		}
		if !re.Match(line) {
			t.Errorf("%s: diff touches a non-env line: %c%q", name, kind, line)
		}
	}
}

// checkSemantic checks, independently of Inject's own check, that out
// decodes to in's data plus vars in the top-level environment.environment
// (for the variables in doesn't set already).
func checkSemantic(t testing.TB, name string, in, out []byte, vars map[string]string) {
	t.Helper()
	checkSemanticForce(t, name, in, out, vars, false)
}

// checkSemanticForce is checkSemantic where, with force, vars replace the
// values in already sets.
func checkSemanticForce(t testing.TB, name string, in, out []byte, vars map[string]string, force bool) {
	t.Helper()
	var want, got map[string]any
	if err := yaml.Unmarshal(in, &want); err != nil {
		t.Fatalf("%s: input: %v", name, err)
	}
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: output does not parse: %v\n%s", name, err, out)
	}
	// Maps with a non-string key decode as map[any]any.
	set := func(m any, k string, v any) {
		switch m := m.(type) {
		case map[string]any:
			m[k] = v
		case map[any]any:
			m[k] = v
		}
	}
	get := func(m any, k string) (any, bool) {
		switch m := m.(type) {
		case map[string]any:
			v, ok := m[k]
			return v, ok
		case map[any]any:
			v, ok := m[k]
			return v, ok
		}
		return nil, false
	}
	isMap := func(m any) bool {
		switch m.(type) {
		case map[string]any, map[any]any:
			return true
		}
		return false
	}
	env, _ := get(want, "environment")
	if !isMap(env) {
		env = map[string]any{}
		want["environment"] = env
	}
	inner, _ := get(env, "environment")
	if !isMap(inner) {
		inner = map[string]any{}
		set(env, "environment", inner)
	}
	for k, v := range vars {
		if _, ok := get(inner, k); !ok || force {
			set(inner, k, v)
		}
	}
	if !reflect.DeepEqual(fmt.Sprintf("%#v", want), fmt.Sprintf("%#v", got)) {
		t.Errorf("%s: output data differs from input plus variables:\nwant %v\ngot  %v", name, want, got)
	}
}

func TestCorpusHasSkippable(t *testing.T) {
	// The corpus holds melange pipeline files too: they must be skipped,
	// not rewritten.
	skipped := 0
	for _, f := range corpusFiles(t) {
		src, _ := os.ReadFile(f)
		if _, err := Inject(src, Options{}); errors.Is(err, ErrNotMelange) {
			skipped++
			if !strings.Contains(f, "pipelines_") {
				t.Logf("skipped %s", f)
			}
		}
	}
	if skipped == 0 {
		t.Error("no corpus file was skipped as not a melange config")
	}
}
