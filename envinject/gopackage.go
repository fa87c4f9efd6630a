package envinject

import (
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// GoPackage is the Go toolchain package a melange build installs.
type GoPackage struct {
	// Spec is the entry as written: "go-1.26=1.26.0-r0", "go~1.26", "go".
	Spec string
	// Name is the package name without a version constraint: "go-1.26",
	// "go".
	Name string
	// Version is the Go minor version ("1.26") when the name or an exact
	// (=) or fuzzy (~) constraint pins it, "" when any Go would do.
	Version string
	// FromStep reports that the name comes from a go/build or go/install
	// step's go-package input, not from environment.contents.packages.
	FromStep bool
	// Line and Col locate the entry (for FromStep, the step).
	Line, Col int
}

// goPackageName matches melange's Go toolchain packages: go, go-1.26, ...
var goPackageName = regexp.MustCompile(`^go(-[0-9]+(\.[0-9]+)*)?$`)

// goMinor matches the Go minor version at the start of a package version:
// "1.26" in "1.26", "1.26.8-r0".
var goMinor = regexp.MustCompile(`^([0-9]+\.[0-9]+)(?:$|[.-])`)

// goStepPipelines are melange's pipelines that install the Go package of
// their go-package input, "go" by default (pkg/build/pipelines/go/build.yaml).
var goStepPipelines = map[string]bool{"go/build": true, "go/build/v2": true, "go/install": true}

// ParseGoPackage reads one environment.contents.packages entry as a Go
// package; ok is false when the entry is not one (go-fips, golang, gox).
// apk constraints follow the name: =VERSION (exact), ~VERSION (fuzzy,
// a prefix), <, >, <=, >= (ranges, which pin nothing).
func ParseGoPackage(spec string) (g GoPackage, ok bool) {
	name, op, ver := spec, "", ""
	if i := strings.IndexAny(spec, "=<>~"); i >= 0 {
		name = spec[:i]
		rest := spec[i:]
		j := strings.IndexFunc(rest, func(r rune) bool { return !strings.ContainsRune("=<>~", r) })
		if j < 0 {
			j = len(rest)
		}
		op, ver = rest[:j], rest[j:]
	}
	if !goPackageName.MatchString(name) {
		return GoPackage{}, false
	}
	g = GoPackage{Spec: spec, Name: name}
	if v, versioned := strings.CutPrefix(name, "go-"); versioned {
		if m := goMinor.FindStringSubmatch(v); m != nil {
			g.Version = m[1]
		}
	} else if op == "=" || op == "~" || op == "=~" || op == "~=" {
		if m := goMinor.FindStringSubmatch(ver); m != nil {
			g.Version = m[1]
		}
	}
	return g, true
}

// goPackage finds the Go package the build installs: the first Go entry of
// environment.contents.packages, or else the go-package input of the first
// go/build or go/install step of the package's and subpackages' pipelines
// (most Go configs name no Go package of their own and get "go" that way).
// Nested steps are not searched: {go} never did.
func (c *Config) goPackage() *GoPackage {
	for i, spec := range c.Contents.Packages {
		g, ok := ParseGoPackage(spec)
		if !ok {
			continue
		}
		if n := c.packageNode(i); n != nil {
			g.Line, g.Col = n.Line, c.doc.t.byteCol(n.Line, n.Column)
		}
		return &g
	}
	steps := c.Pipeline
	for _, sp := range c.Subpackages {
		steps = append(steps[:len(steps):len(steps)], sp.Pipeline...)
	}
	for _, s := range steps {
		if !goStepPipelines[s.Uses] {
			continue
		}
		g := GoPackage{Spec: "go", Name: "go"}
		if p := s.With["go-package"]; p != "" && goPackageName.MatchString(p) {
			// A bare name only, as {go} always took it.
			g, _ = ParseGoPackage(p)
		}
		g.FromStep, g.Line, g.Col = true, s.Line, s.Col
		return &g
	}
	return nil
}

// packageNode returns the node of environment.contents.packages[i], nil
// when the sequence is not written out plainly there (an alias or merge key
// brings it in from elsewhere).
func (c *Config) packageNode(i int) *yaml.Node {
	_, env := mapGet(c.doc.root, "environment")
	_, contents := mapGet(env, "contents")
	_, pkgs := mapGet(contents, "packages")
	if pkgs == nil || pkgs.Kind != yaml.SequenceNode || len(pkgs.Content) != len(c.Contents.Packages) {
		return nil
	}
	if n := pkgs.Content[i]; n.Kind == yaml.ScalarNode {
		return n
	}
	return nil
}
