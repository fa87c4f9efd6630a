package envinject

import (
	"bytes"
	"fmt"
	"math/rand"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestEffectiveCaches(t *testing.T) {
	tests := []struct {
		name, src   string
		envFile     []Var
		mod, cache  Setting
		goBuildStep bool
	}{
		{
			name:  "melange defaults",
			src:   "package: {name: x}\n",
			mod:   Setting{Value: DefaultGoModCache, From: FromDefault, Persists: true},
			cache: Setting{Value: "/home/build/.cache/go-build", From: FromDefault, Persists: false},
		},
		{
			name:    "env file",
			src:     "package: {name: x}\n",
			envFile: []Var{{"GOCACHE", DefaultGoCache}},
			mod:     Setting{Value: DefaultGoModCache, From: FromDefault, Persists: true},
			cache:   Setting{Value: DefaultGoCache, From: FromEnvFile, Persists: true},
		},
		{
			name:        "yaml wins over env file; go/build steps noted",
			src:         "package:\n  name: x\nenvironment:\n  environment:\n    GOMODCACHE: /var/cache/melange\n    GOCACHE: /tmp/c\npipeline:\n  - uses: go/build\n",
			envFile:     []Var{{"GOCACHE", DefaultGoCache}, {"GOMODCACHE", DefaultGoModCache}},
			mod:         Setting{Value: GuestRoot, From: FromYAML, Line: 5, Col: 5, Persists: true},
			cache:       Setting{Value: "/tmp/c", From: FromYAML, Line: 6, Col: 5, Persists: false},
			goBuildStep: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := EffectiveCaches([]byte(tt.src), tt.envFile)
			if err != nil {
				t.Fatal(err)
			}
			if c.GoModCache != tt.mod || c.GoCache != tt.cache || c.GoBuildSteps != tt.goBuildStep {
				t.Errorf("got %+v\nwant mod %+v cache %+v gobuild %v", c, tt.mod, tt.cache, tt.goBuildStep)
			}
		})
	}
	if _, err := EffectiveCaches([]byte("package: [\n"), nil); err == nil {
		t.Error("malformed YAML: no error")
	}
}

func TestWriteEnvFile(t *testing.T) {
	vars, err := DefaultVars(Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteEnvFile(&b, vars); err != nil {
		t.Fatal(err)
	}
	want := "GOMODCACHE=/var/cache/melange/gomodcache\nGOCACHE=/var/cache/melange/gocache\nGOPROXY=off\nGOTOOLCHAIN=local\nGOFLAGS=-mod=mod\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if err := WriteEnvFile(&b, []Var{{"GOFLAGS", "-mod=mod -trimpath"}}); err == nil {
		t.Error("a value with a space was written unquoted")
	}
}

func TestDefaultVars(t *testing.T) {
	vars, err := DefaultVars(Options{GoModCache: GuestRoot, Set: []Var{{"GOCACHE", "/var/cache/melange/gc"}, {"A", "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(vars); got != "[GOMODCACHE=/var/cache/melange GOCACHE=/var/cache/melange/gc A=1]" {
		t.Errorf("got %s", got)
	}
	for _, o := range []Options{{GoCache: "rel"}, {Set: []Var{{"1A", "x"}}}, {Set: []Var{{"A", "x\ny"}}}} {
		if _, err := DefaultVars(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestExports(t *testing.T) {
	got := fmt.Sprint(exports([]byte(`a; export A=1 GOCACHE="/x y" B; reexport GOCACHE=/no && export GOMODCACHE=/m # export GOCACHE=/c`)))
	want := `[{A 1 10} {GOCACHE /x y 14} {GOMODCACHE /m 63}]`
	if got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

// splitLines splits b after each newline.
func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

var hunkRE = regexp.MustCompile(`^@@ -(\d+),(\d+) \+(\d+),(\d+) @@$`)

// applyDiff applies a unified diff made by Diff to a, checking every
// context and removed line: an independent reader of the format.
func applyDiff(t *testing.T, a, d []byte) []byte {
	t.Helper()
	src := splitLines(a)
	var out [][]byte
	pos := 0
	lines := splitLines(d)[3:] // after "diff a b", "--- a", "+++ b"
	for i := 0; i < len(lines); {
		m := hunkRE.FindSubmatch(bytes.TrimSuffix(lines[i], []byte("\n")))
		if m == nil {
			t.Fatalf("bad hunk header %q", lines[i])
		}
		i++
		oldStart, _ := strconv.Atoi(string(m[1]))
		oldN, _ := strconv.Atoi(string(m[2]))
		if oldN > 0 {
			oldStart--
		}
		out = append(out, src[pos:oldStart]...)
		pos = oldStart
		for i < len(lines) && !bytes.HasPrefix(lines[i], []byte("@@")) {
			l := lines[i]
			i++
			body := l[1:]
			if i < len(lines) && bytes.HasPrefix(lines[i], []byte(`\ No newline`)) {
				body = bytes.TrimSuffix(body, []byte("\n"))
				i++
			}
			switch l[0] {
			case ' ', '-':
				if pos >= len(src) || !bytes.Equal(src[pos], body) {
					t.Fatalf("line %d: diff says %q, file has %q", pos+1, body, src[min(pos, len(src)-1)])
				}
				if l[0] == ' ' {
					out = append(out, body)
				}
				pos++
			case '+':
				out = append(out, body)
			default:
				t.Fatalf("bad diff line %q", l)
			}
		}
	}
	out = append(out, src[pos:]...)
	return bytes.Join(out, nil)
}

func TestDiff(t *testing.T) {
	if d := Diff("a", "b", []byte("x\n"), []byte("x\n")); d != nil {
		t.Errorf("equal inputs: %q", d)
	}
	got := string(Diff("f.orig", "f", []byte("a\nb\nc"), []byte("a\nb\nc\nd\n")))
	want := "diff f.orig f\n--- f.orig\n+++ f\n@@ -1,3 +1,4 @@\n a\n b\n-c\n\\ No newline at end of file\n+c\n+d\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Random edits of random files: the diff must apply back.
	r := rand.New(rand.NewSource(1))
	for n := 0; n < 500; n++ {
		var a []string
		for i := r.Intn(40); i > 0; i-- {
			a = append(a, strconv.Itoa(r.Intn(6)))
		}
		b := append([]string(nil), a...)
		for e := r.Intn(5); e > 0; e-- {
			p := r.Intn(len(b) + 1)
			switch r.Intn(3) {
			case 0:
				b = append(b[:p], append([]string{"new" + strconv.Itoa(e)}, b[p:]...)...)
			case 1:
				if p < len(b) {
					b = append(b[:p], b[p+1:]...)
				}
			case 2:
				if p < len(b) {
					b[p] = "changed"
				}
			}
		}
		join := func(ls []string, final bool) []byte {
			s := strings.Join(ls, "\n")
			if final && len(ls) > 0 {
				s += "\n"
			}
			return []byte(s)
		}
		ab, bb := join(a, r.Intn(2) == 0), join(b, r.Intn(2) == 0)
		d := Diff("a", "b", ab, bb)
		if bytes.Equal(ab, bb) {
			continue
		}
		if got := applyDiff(t, ab, d); !bytes.Equal(got, bb) {
			t.Fatalf("diff of %q -> %q does not apply:\n%s\ngot %q", ab, bb, d, got)
		}
	}
}
