package envinject

import (
	"errors"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Config is what melcache reads of a melange build config: the one reader
// of melange YAML in melcache (inject, lint, key templates, preload and
// doctor all use it). Fields hold the data as melange would decode it
// (aliases resolved, merge keys applied); positions are 1-based lines and
// byte columns.
type Config struct {
	// File is the name given to ParseConfig, used in messages.
	File string

	Package     Package
	Vars        map[string]string
	Contents    Contents          // environment.contents
	Environment map[string]string // environment.environment

	// Pipeline is the package's pipeline; Subpackages and Test hold the
	// other pipelines. Steps lists all of them, flattened.
	Pipeline    []Step
	Subpackages []Subpackage
	Test        *Test

	// Go is the Go toolchain package the build installs, nil when the
	// config names none (see GoPackage).
	Go *GoPackage

	doc *doc
}

// Package is the config's package: block.
type Package struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Epoch   uint64 `yaml:"epoch"`
}

// Contents is an environment's contents: block.
type Contents struct {
	Packages     []string `yaml:"packages"`
	Repositories []string `yaml:"repositories"`
}

// Subpackage is one entry of subpackages:.
type Subpackage struct {
	Name     string `yaml:"name"`
	Pipeline []Step `yaml:"pipeline"`
	Test     *Test  `yaml:"test"`

	err error // a value of the wrong type (see keepPartial)
}

// Test is a test: block, the package's or a subpackage's.
type Test struct {
	Environment struct {
		Contents    Contents          `yaml:"contents"`
		Environment map[string]string `yaml:"environment"`
	} `yaml:"environment"`
	Pipeline []Step `yaml:"pipeline"`

	// Node is the test: mapping, for positions.
	Node *yaml.Node `yaml:"-"`

	err error
}

// Step is one pipeline step.
type Step struct {
	Uses        string            `yaml:"uses"`
	With        map[string]string `yaml:"with"`
	Runs        string            `yaml:"runs"`
	Environment map[string]string `yaml:"environment"`
	// WorkDir is working-directory as written (see StepAt.WorkDir for the
	// one the step runs in).
	WorkDir  string `yaml:"working-directory"`
	Pipeline []Step `yaml:"pipeline"`

	// Line and Col locate the step (its first key).
	Line, Col int `yaml:"-"`
	// Node is the step's mapping, for the positions of its keys.
	Node *yaml.Node `yaml:"-"`

	err error
}

// UnmarshalYAML keeps the step's node.
func (s *Step) UnmarshalYAML(n *yaml.Node) error {
	type plain Step
	s.Node = resolve(n)
	return keepPartial(s.Node, n.Decode((*plain)(s)), &s.err)
}

// UnmarshalYAML keeps the test's node.
func (t *Test) UnmarshalYAML(n *yaml.Node) error {
	type plain Test
	t.Node = resolve(n)
	return keepPartial(t.Node, n.Decode((*plain)(t)), &t.err)
}

// UnmarshalYAML keeps a subpackage with a value of the wrong type.
func (sp *Subpackage) UnmarshalYAML(n *yaml.Node) error {
	type plain Subpackage
	return keepPartial(resolve(n), n.Decode((*plain)(sp)), &sp.err)
}

// keepPartial keeps a mapping that has a value of the wrong type, such as
// a step whose with: holds a list: yaml.v3 would drop the whole step from
// its pipeline, and Inject still lints the rest of it. The error is kept in
// *into for ParseConfig, which reports it.
func keepPartial(n *yaml.Node, err error, into *error) error {
	var te *yaml.TypeError
	if n != nil && n.Kind == yaml.MappingNode && errors.As(err, &te) {
		*into = err
		return nil
	}
	return err
}

// rawConfig is the shape decoded from the YAML.
type rawConfig struct {
	Package     Package           `yaml:"package"`
	Vars        map[string]string `yaml:"vars"`
	Environment struct {
		Contents    Contents          `yaml:"contents"`
		Environment map[string]string `yaml:"environment"`
	} `yaml:"environment"`
	Pipeline    []Step       `yaml:"pipeline"`
	Subpackages []Subpackage `yaml:"subpackages"`
	Test        *Test        `yaml:"test"`
}

// ReadConfig reads and parses the melange config at path.
func ReadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, b)
}

// ParseConfig parses the melange config data; name is used in errors. A
// problem with the input is an *Error, printed "name:line:col: message";
// YAML that is not a melange config wraps ErrNotMelange.
func ParseConfig(name string, data []byte) (*Config, error) {
	c, err := parseConfig(data)
	var e *Error
	switch {
	case err == nil:
		c.File = name
		return c, nil
	case errors.As(err, &e):
		e.File = name
		return nil, e
	}
	return nil, fmt.Errorf("%s: %w", name, err)
}

// parseConfig is ParseConfig without a name.
func parseConfig(data []byte) (*Config, error) {
	d, err := parse(data)
	if err != nil {
		return nil, err
	}
	c, typeErr := d.config()
	if typeErr != nil {
		return nil, typeErr
	}
	return c, nil
}

// config decodes the parsed document. A value of the wrong type (a
// sequence where melange wants a string) is returned as typeErr, an *Error
// at the first such value; the Config is still filled with everything
// else, for Inject, which lints what it can read and leaves the rest to
// melange.
func (d *doc) config() (c *Config, typeErr error) {
	var raw rawConfig
	errs := []error{d.doc.Decode(&raw)}
	c = &Config{
		Package:     raw.Package,
		Vars:        raw.Vars,
		Contents:    raw.Environment.Contents,
		Environment: raw.Environment.Environment,
		Pipeline:    raw.Pipeline,
		Subpackages: raw.Subpackages,
		Test:        raw.Test,
		doc:         d,
	}
	for _, sp := range c.Subpackages {
		errs = append(errs, sp.err)
		if sp.Test != nil {
			errs = append(errs, sp.Test.err)
		}
	}
	if c.Test != nil {
		errs = append(errs, c.Test.err)
	}
	for _, s := range c.Steps() {
		errs = append(errs, s.err)
		if n := s.Step.Node; n != nil && n.Line > 0 {
			if len(n.Content) > 0 {
				n = n.Content[0] // not the anchor of an anchored step
			}
			s.Step.Line, s.Step.Col = n.Line, d.t.byteCol(n.Line, n.Column)
		}
	}
	c.Go = c.goPackage()
	var first *Error
	for _, err := range errs {
		if err == nil {
			continue
		}
		e := d.yamlError(err).(*Error)
		if first == nil || e.Line < first.Line || (e.Line == first.Line && e.Col < first.Col) {
			first = e
		}
	}
	if first != nil {
		return c, first
	}
	return c, nil
}

// Root returns the config's top-level mapping node.
func (c *Config) Root() *yaml.Node { return c.doc.root }

// StepAt is a step with where it is.
type StepAt struct {
	*Step
	// WorkDir is the working directory the step runs in as written: its
	// own working-directory, else its parent step's ("" for melange's
	// default).
	WorkDir string
	// Where names the pipeline: "pipeline", "test", "subpackage NAME" or
	// "subpackage NAME test".
	Where string
	// Test reports a test pipeline's step (not run by melange build's
	// build phase).
	Test bool
}

// Steps lists every step, nested ones after their parent: the package's
// pipeline, then each subpackage's pipeline and test, then the package's
// test.
func (c *Config) Steps() []StepAt {
	var out []StepAt
	var walk func(steps []Step, wd, where string, test bool)
	walk = func(steps []Step, wd, where string, test bool) {
		for i := range steps {
			s := &steps[i]
			w := wd
			if s.WorkDir != "" {
				w = s.WorkDir
			}
			out = append(out, StepAt{Step: s, WorkDir: w, Where: where, Test: test})
			walk(s.Pipeline, w, where, test)
		}
	}
	walk(c.Pipeline, "", "pipeline", false)
	for i := range c.Subpackages {
		sp := &c.Subpackages[i]
		walk(sp.Pipeline, "", sp.where(), false)
		if sp.Test != nil {
			walk(sp.Test.Pipeline, "", sp.where()+" test", true)
		}
	}
	if c.Test != nil {
		walk(c.Test.Pipeline, "", "test", true)
	}
	return out
}

// where names the subpackage in messages: "subpackage NAME".
func (sp *Subpackage) where() string {
	if sp.Name == "" {
		return "subpackage"
	}
	return "subpackage " + sp.Name
}

// BuildSteps is Steps without the test pipelines.
func (c *Config) BuildSteps() []StepAt {
	var out []StepAt
	for _, s := range c.Steps() {
		if !s.Test {
			out = append(out, s)
		}
	}
	return out
}
