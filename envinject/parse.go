package envinject

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Error is a problem with the input, at a 1-based line and byte column:
// "pkg.yaml:3:5: message". Inject leaves File empty and its caller prefixes
// the name; ParseConfig sets it.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	if e.File != "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg)
}

// ErrNotMelange is returned for YAML that is not a melange build config: its
// top-level mapping has no package: key (melange pipeline files, CI files) or
// it holds no document at all. Bulk callers skip such files.
var ErrNotMelange = errors.New("not a melange config (no top-level package:)")

// bom is the UTF-8 byte order mark, kept on output when the input had it.
var bom = []byte("\xef\xbb\xbf")

// doc is a parsed melange config: its text without BOM and its node tree.
type doc struct {
	t    *text
	bom  bool
	doc  *yaml.Node // the document node
	root *yaml.Node // its top-level mapping
}

// parse checks src and parses it. Every error is an *Error with a position,
// or ErrNotMelange.
func parse(src []byte) (*doc, error) {
	d := &doc{}
	if bytes.HasPrefix(src, bom) {
		d.bom = true
		src = src[len(bom):]
	}
	d.t = newText(src)
	if err := checkChars(d.t); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrNotMelange
		}
		return nil, d.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Line: extra.Line, Col: 1, Msg: "more than one YAML document; a melange config is one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, d.yamlError(err)
	}
	d.doc = &n
	if len(n.Content) == 0 {
		return nil, ErrNotMelange
	}
	root := n.Content[0]
	if root.Kind != yaml.MappingNode {
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			return nil, ErrNotMelange
		}
		return nil, d.errAt(root, "top level is %s, want a mapping (a melange config)", kindName(root))
	}
	d.root = root
	if err := d.checkDuplicates(root, map[*yaml.Node]bool{}); err != nil {
		return nil, err
	}
	// Decoding catches what the node tree does not: bad merges, values
	// that do not match their tag.
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, d.yamlError(err)
	}
	if k, _ := mapGet(root, "package"); k == nil {
		return nil, ErrNotMelange
	}
	if err := d.checkEnvTypes(); err != nil {
		return nil, err
	}
	return d, nil
}

// checkChars rejects bytes that are not UTF-8 and characters YAML forbids,
// at their position (yaml.v3 reports them without one).
func checkChars(t *text) error {
	src := t.src
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n <= 1 {
			l, c := t.pos(i)
			return &Error{Line: l, Col: c, Msg: fmt.Sprintf("invalid UTF-8 byte 0x%02x; melange configs must be UTF-8", src[i])}
		}
		// YAML 1.2 printable set: tab, LF, CR, x20-x7E, NEL, xA0-xD7FF,
		// xE000-xFFFD, x10000 and up.
		ok := r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0x7e) || r == 0x85 ||
			(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd && r != 0xfeff) || r >= 0x10000
		if !ok {
			l, c := t.pos(i)
			return &Error{Line: l, Col: c, Msg: fmt.Sprintf("character %U is not allowed in YAML", r)}
		}
		i += n
	}
	return nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// parserErrors are the yaml.v3 parser (not scanner) errors. For them
// yaml.v3 prints the 0-based line of the construct being parsed (its
// decode.go adds 1 for scanner errors only), so one is added here.
var parserErrors = map[string]bool{
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"did not find expected <document start>": true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// yamlError turns a yaml.v3 error into an *Error. yaml.v3 reports a line
// but no column; the column is then that line's first non-blank character.
func (d *doc) yamlError(err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs = te.Errors
	}
	msg := strings.TrimPrefix(msgs[0], "yaml: ")
	line := 1
	if m := lineRE.FindStringSubmatch(msgs[0]); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserErrors[msg] {
			line++
		}
	}
	if line > d.t.lines() {
		line = max(d.t.lines(), 1)
	}
	return &Error{Line: line, Col: d.t.indent(line) + 1, Msg: msg}
}

func (d *doc) errAt(n *yaml.Node, format string, args ...any) *Error {
	return &Error{Line: n.Line, Col: d.t.byteCol(n.Line, n.Column), Msg: fmt.Sprintf(format, args...)}
}

// checkDuplicates reports the second of two equal keys in one mapping.
// Unmarshalling into a yaml.Node does not check them.
func (d *doc) checkDuplicates(n *yaml.Node, seen map[*yaml.Node]bool) error {
	if seen[n] {
		return nil
	}
	seen[n] = true
	if n.Kind == yaml.MappingNode {
		keys := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				continue
			}
			id := k.ShortTag() + "\x00" + k.Value
			if first, dup := keys[id]; dup {
				return d.errAt(k, "duplicate key %q (first at line %d)", k.Value, first.Line)
			}
			keys[id] = k
		}
	}
	for _, c := range n.Content {
		if err := d.checkDuplicates(c, seen); err != nil {
			return err
		}
	}
	return nil
}

// checkEnvTypes rejects a top-level environment, or its environment map,
// that is neither a mapping nor empty, and variable values that are not
// scalars: melange would refuse them too.
func (d *doc) checkEnvTypes() error {
	_, env := mapGet(d.root, "environment")
	if env == nil {
		return nil
	}
	if err := d.wantMap(env, "environment"); err != nil {
		return err
	}
	if env.Kind != yaml.MappingNode {
		return nil
	}
	_, vars := mapGet(env, "environment")
	if vars == nil {
		return nil
	}
	if err := d.wantMap(vars, "environment.environment"); err != nil {
		return err
	}
	for i := 0; i+1 < len(vars.Content); i += 2 {
		k, v := vars.Content[i], vars.Content[i+1]
		if k.ShortTag() == "!!merge" {
			continue
		}
		if r := resolve(v); r.Kind != yaml.ScalarNode {
			return d.errAt(v, "environment.environment.%s is %s, want a string", k.Value, kindName(r))
		}
	}
	return nil
}

func (d *doc) wantMap(n *yaml.Node, name string) error {
	r := resolve(n)
	if r.Kind == yaml.MappingNode || (r.Kind == yaml.ScalarNode && r.ShortTag() == "!!null") {
		return nil
	}
	return d.errAt(n, "%s is %s, want a mapping", name, kindName(r))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return "a scalar (" + strings.TrimPrefix(n.ShortTag(), "!!") + ")"
	}
	return "empty"
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// mapGet returns the key and value nodes of the string key k in mapping m
// (explicit keys only, not those a merge key brings in).
func mapGet(m *yaml.Node, k string) (key, val *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if c := m.Content[i]; c.Kind == yaml.ScalarNode && c.Value == k && c.ShortTag() == "!!str" {
			return c, m.Content[i+1]
		}
	}
	return nil, nil
}

// mergedGet returns the value k gets from the merge keys (<<) of m, if any.
func mergedGet(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].ShortTag() != "!!merge" {
			continue
		}
		src := resolve(m.Content[i+1])
		var maps []*yaml.Node
		if src.Kind == yaml.SequenceNode {
			for _, s := range src.Content {
				maps = append(maps, resolve(s))
			}
		} else {
			maps = append(maps, src)
		}
		for _, mm := range maps {
			if _, v := mapGet(mm, k); v != nil {
				return v
			}
			if v := mergedGet(mm, k); v != nil {
				return v
			}
		}
	}
	return nil
}

// lookup returns the value of k in m: explicit first, then merged.
func lookup(m *yaml.Node, k string) *yaml.Node {
	if _, v := mapGet(m, k); v != nil {
		return v
	}
	return mergedGet(m, k)
}
