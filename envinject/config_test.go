package envinject

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestConfigGoPackage reads every form of Go package a config can name.
func TestConfigGoPackage(t *testing.T) {
	for _, tc := range []struct {
		packages string // the environment.contents.packages entries
		pipeline string // the pipeline: value, "" for none
		name     string // Go.Name; "" for no Go package
		version  string
		fromStep bool
	}{
		{packages: "[go-1.26]", name: "go-1.26", version: "1.26"},
		{packages: "[go~1.26]", name: "go", version: "1.26"},
		{packages: "[go~1.26.3]", name: "go", version: "1.26"},
		{packages: "[go=1.26.8-r0]", name: "go", version: "1.26"},
		{packages: "[go-1.26=1.26.0-r0]", name: "go-1.26", version: "1.26"},
		{packages: "['go-1.26>=1.26.2']", name: "go-1.26", version: "1.26"},
		{packages: "[go]", name: "go"},
		{packages: "['go>=1.25']", name: "go"},
		{packages: "['go<1.27']", name: "go"},
		{packages: "[go-1]", name: "go-1"},
		{packages: "[busybox, go-1.25, go-1.26]", name: "go-1.25", version: "1.25"},
		{packages: "[go-fips, golang, gox, go-1.26-fips]"},
		{packages: "[]", pipeline: "[{uses: go/build, with: {packages: .}}]", name: "go", fromStep: true},
		{packages: "[]", pipeline: "[{uses: go/install, with: {go-package: go-1.24}}]", name: "go-1.24", version: "1.24", fromStep: true},
		{packages: "[]", pipeline: "[{uses: go/build/v2, with: {go-package: 'go-1.24=1.24.1-r0'}}]", name: "go", fromStep: true},
		{packages: "[go-1.26]", pipeline: "[{uses: go/build, with: {go-package: go-1.24}}]", name: "go-1.26", version: "1.26"},
		{packages: "[]", pipeline: "[{runs: go build}]"},
	} {
		src := "package: {name: p, version: 1}\nenvironment:\n  contents:\n    packages: " + tc.packages + "\n"
		if tc.pipeline != "" {
			src += "pipeline: " + tc.pipeline + "\n"
		}
		c, err := ParseConfig("p.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", tc.packages, err)
		}
		if tc.name == "" {
			if c.Go != nil {
				t.Errorf("%s %s: Go = %+v, want none", tc.packages, tc.pipeline, *c.Go)
			}
			continue
		}
		if c.Go == nil {
			t.Errorf("%s %s: no Go package, want %s", tc.packages, tc.pipeline, tc.name)
			continue
		}
		if c.Go.Name != tc.name || c.Go.Version != tc.version || c.Go.FromStep != tc.fromStep {
			t.Errorf("%s %s: Go = %+v, want name %q version %q fromStep %v", tc.packages, tc.pipeline, *c.Go, tc.name, tc.version, tc.fromStep)
		}
		if c.Go.Line == 0 || c.Go.Col == 0 {
			t.Errorf("%s %s: Go has no position: %+v", tc.packages, tc.pipeline, *c.Go)
		}
	}
}

func TestConfigGoPackagePosition(t *testing.T) {
	src := "package:\n  name: p\nenvironment:\n  contents:\n    packages:\n      - busybox\n      - \"go-1.26=1.26.0-r0\"\n"
	c, err := ParseConfig("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := GoPackage{Spec: "go-1.26=1.26.0-r0", Name: "go-1.26", Version: "1.26", Line: 7, Col: 9}
	if c.Go == nil || *c.Go != want {
		t.Errorf("Go = %+v, want %+v", c.Go, want)
	}
}

const fullConfig = `package:
  name: hello
  version: 1.2.3
  epoch: 4
vars:
  tag: v${{package.version}}
environment:
  contents:
    repositories: [https://packages.wolfi.dev/os]
    packages: &pkgs
      - go-1.26
  environment:
    GOTOOLCHAIN: local
.step: &checkout
  uses: git-checkout
  with:
    repository: https://example.com/hello
    tag: ${{vars.tag}}
pipeline:
  - *checkout
  - working-directory: sub
    pipeline:
      - uses: go/build
        with: {packages: ./cmd/hello, modroot: .}
  - runs: |
      echo hi
    environment:
      X: "1"
subpackages:
  - name: hello-dev
    pipeline:
      - uses: split/dev
    test:
      pipeline:
        - runs: hello-dev --help
test:
  environment:
    contents:
      packages: *pkgs
    environment:
      GOFLAGS: -mod=mod
  pipeline:
    - runs: hello --version
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("hello.yaml", []byte(fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.File != "hello.yaml" || c.Package != (Package{Name: "hello", Version: "1.2.3", Epoch: 4}) {
		t.Errorf("File %q Package %+v", c.File, c.Package)
	}
	if c.Vars["tag"] != "v${{package.version}}" {
		t.Errorf("Vars = %v", c.Vars)
	}
	if !reflect.DeepEqual(c.Contents, Contents{Packages: []string{"go-1.26"}, Repositories: []string{"https://packages.wolfi.dev/os"}}) {
		t.Errorf("Contents = %+v", c.Contents)
	}
	if !reflect.DeepEqual(c.Environment, map[string]string{"GOTOOLCHAIN": "local"}) {
		t.Errorf("Environment = %v", c.Environment)
	}
	if c.Test == nil || c.Test.Environment.Environment["GOFLAGS"] != "-mod=mod" || len(c.Test.Environment.Contents.Packages) != 1 {
		t.Errorf("Test = %+v", c.Test)
	}
	type row struct {
		where, uses, runs, workdir string
		test                       bool
		line, col                  int
	}
	var got []row
	for _, s := range c.Steps() {
		got = append(got, row{s.Where, s.Uses, strings.TrimSpace(s.Runs), s.WorkDir, s.Test, s.Line, s.Col})
	}
	want := []row{
		// The alias's step is where its anchor is: line 15.
		{"pipeline", "git-checkout", "", "", false, 15, 3},
		{"pipeline", "", "", "sub", false, 21, 5},
		{"pipeline", "go/build", "", "sub", false, 23, 9},
		{"pipeline", "", "echo hi", "", false, 25, 5},
		{"subpackage hello-dev", "split/dev", "", "", false, 32, 9},
		{"subpackage hello-dev test", "", "hello-dev --help", "", true, 35, 11},
		{"test", "", "hello --version", "", true, 43, 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Steps:\n got %+v\nwant %+v", got, want)
	}
	if n := len(c.BuildSteps()); n != 5 {
		t.Errorf("BuildSteps: %d steps, want 5", n)
	}
	steps := c.Steps()
	if w := steps[0].With; w["repository"] != "https://example.com/hello" || w["tag"] != "${{vars.tag}}" {
		t.Errorf("checkout with = %v", w)
	}
	if steps[3].Environment["X"] != "1" {
		t.Errorf("step environment = %v", steps[3].Environment)
	}
	if c.Root() == nil || c.Root().Line != 1 {
		t.Errorf("Root = %+v", c.Root())
	}
}

// TestParseConfigErrors: every problem is "file:line:col: message".
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"package:\n  name: x\npipeline:\n  - uses: [git-checkout]\n", "c.yaml:4:3: cannot unmarshal !!seq into string"},
		{"package:\n  name: x\n  epoch: -1\n", "c.yaml:3:3: cannot unmarshal !!int `-1` into uint64"},
		{"package:\n  name: x\n  name: y\n", `c.yaml:3:3: duplicate key "name" (first at line 2)`},
		{"package:\n  name: [x\n", "c.yaml:2:3: did not find expected ',' or ']'"},
		{"package: {name: x}\npipeline:\n  - uses: go/build\n    with:\n      packages: [a]\n", "c.yaml:5:7: cannot unmarshal !!seq into string"},
		{"package: {name: x}\ntest:\n  pipeline:\n    - runs: x\n  environment: {environment: {A: b}, contents: {packages: a}}\n", "c.yaml:5:3: cannot unmarshal !!str `a` into []string"},
		{"package: {name: x}\nenvironment:\n  environment: [a]\n", "c.yaml:3:16: environment.environment is a sequence, want a mapping"},
	} {
		_, err := ParseConfig("c.yaml", []byte(tc.src))
		var e *Error
		if err == nil || err.Error() != tc.want || !errors.As(err, &e) {
			t.Errorf("%q: got %v, want %s", tc.src, err, tc.want)
		}
	}
	_, err := ParseConfig("ci.yaml", []byte("jobs: {}\n"))
	if !errors.Is(err, ErrNotMelange) || !strings.HasPrefix(err.Error(), "ci.yaml: ") {
		t.Errorf("not melange: got %v", err)
	}
}

func TestReadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hello.yaml")
	if err := os.WriteFile(p, []byte(fullConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ReadConfig(p)
	if err != nil || c.File != p || c.Package.Name != "hello" {
		t.Fatalf("ReadConfig = %+v, %v", c, err)
	}
	if _, err := ReadConfig(p + ".nope"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestInjectLintsIllTypedStep: a step with a value of the wrong type is
// melange's to refuse; Inject still lints it, as before it used the reader.
func TestInjectLintsIllTypedStep(t *testing.T) {
	src := "package: {name: x}\npipeline:\n  - uses: go/build\n    with: {packages: [a]}\n    environment:\n      GOCACHE: /tmp/gocache\n"
	res, err := Inject([]byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].Line != 6 || !strings.Contains(res.Findings[0].Msg, "pipeline step environment sets GOCACHE=/tmp/gocache") {
		t.Errorf("findings %v, want one for line 6", res.Findings)
	}
	if _, err := ParseConfig("c.yaml", []byte(src)); err == nil || !strings.HasPrefix(err.Error(), "c.yaml:4:") {
		t.Errorf("ParseConfig: %v, want the type error at line 4", err)
	}
}
