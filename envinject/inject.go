package envinject

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Result is what Inject did to one config.
type Result struct {
	// Out is the rewritten config. It equals the input when Changed is false.
	Out []byte
	// Changed reports whether Out differs from the input.
	Changed bool
	// Set lists the variables written (added or replaced).
	Set []Var
	// Kept lists variables the config already sets to another value; they
	// are left alone unless Options.Force.
	Kept []Kept
	// Findings are lint results: settings that defeat the cache.
	Findings []Finding
}

// Kept is a variable the config already sets to a value other than the one
// Inject would write.
type Kept struct {
	Key, Value, Want string
	Line, Col        int // of the key (1-based, byte column)
}

// Finding is a lint result: a position (1-based line, byte column), what is
// wrong, and a one-line fix.
type Finding struct {
	Line, Col int
	Msg, Fix  string
}

func (f Finding) String() string {
	return fmt.Sprintf("%d:%d: %s (fix: %s)", f.Line, f.Col, f.Msg, f.Fix)
}

// Inject sets the variables of opts in the top-level environment.environment
// map of the melange config src, creating the maps when missing, and lints
// the config's cache settings.
//
// The output differs from src only in the lines added or changed: the edit
// is spliced into the original bytes, so comments, blank lines, key order,
// quoting, anchors, line endings, a BOM and a missing final newline stay as
// they were. Inject re-parses its output and returns an error rather than a
// result whose YAML data is not exactly src's plus the variables. Running
// it again on Out changes nothing.
//
// Errors are *Error (with a position) for bad input, or ErrNotMelange for
// YAML without a top-level package: key.
func Inject(src []byte, opts Options) (Result, error) {
	vars, err := DefaultVars(opts)
	if err != nil {
		return Result{}, err
	}
	d, err := parse(src)
	if err != nil {
		return Result{}, err
	}
	in := &injector{d: d, t: d.t, vars: vars, force: opts.Force, unit: detectIndent(d.root), final: map[string]string{}}
	if err := in.plan(); err != nil {
		return Result{}, err
	}
	if in.err != nil {
		return Result{}, in.err
	}
	res := Result{Kept: in.kept, Set: in.set}
	// A value of the wrong type is melange's to refuse: lint what reads.
	cfg, _ := d.config()
	res.Findings = lint(cfg, in.final)
	if len(in.edits) == 0 {
		res.Out = src
		return res, nil
	}
	out := in.apply()
	// The node tree now holds the expected data: check the text says so.
	if err := verify(d.doc, out); err != nil {
		at := d.root
		if k, _ := mapGet(d.root, "environment"); k != nil && k.Line > 0 {
			at = k
		}
		return Result{}, d.errAt(at, "cannot rewrite this layout safely (%v); set the variables by hand", err)
	}
	if d.bom {
		out = append(append([]byte{}, bom...), out...)
	}
	res.Out = out
	res.Changed = !bytes.Equal(out, src)
	return res, nil
}

type edit struct {
	off, end int // replace t.src[off:end]
	text     string
}

type injector struct {
	d     *doc
	t     *text
	vars  []Var
	force bool
	unit  int
	edits []edit
	kept  []Kept
	set   []Var
	final map[string]string // the value each variable ends up with
	err   error             // set by fail
}

func (in *injector) plan() error {
	root := in.d.root
	envKey, env := mapGet(root, "environment")
	rootFlow := root.Style&yaml.FlowStyle != 0
	if envKey == nil {
		if mergedGet(root, "environment") != nil {
			return in.d.errAt(root, "environment comes from a merge key (<<); set the variables where its anchor is defined")
		}
		add := in.toAdd(nil)
		if len(add) == 0 {
			return nil
		}
		if rootFlow {
			in.flowInsert(root, "environment: {environment: {"+in.flowEntries(add)+"}}")
		} else {
			pk, pv := mapGet(root, "package")
			c := in.col(pk)
			lines := []string{pad(c) + "environment:", pad(c+in.unit) + "environment:"}
			lines = append(lines, in.blockEntries(add, c+2*in.unit)...)
			in.insertAfter(pv, c, lines, true)
		}
		root.Content = append(root.Content, strNode("environment"), mapNode(strNode("environment"), mapNode(varNodes(add)...)))
		return nil
	}
	return in.envMap(envKey, env, rootFlow)
}

// envMap handles the top-level environment: value.
func (in *injector) envMap(key, env *yaml.Node, parentFlow bool) error {
	switch {
	case env.Kind == yaml.AliasNode:
		return in.d.errAt(env, "environment is an alias (*%s); set the variables where &%s is defined", env.Value, env.Value)
	case isNull(env):
		add := in.toAdd(nil)
		in.fillNull(key, env, parentFlow, "environment: {"+in.flowEntries(add)+"}",
			append([]string{pad(in.col(key)+in.unit) + "environment:"}, in.blockEntries(add, in.col(key)+2*in.unit)...))
		*env = *mapNode(strNode("environment"), mapNode(varNodes(add)...))
		return nil
	}
	flow := env.Style&yaml.FlowStyle != 0
	ik, inner := mapGet(env, "environment")
	if ik != nil {
		return in.varsMap(ik, inner, flow)
	}
	if mergedGet(env, "environment") != nil {
		return in.d.errAt(env, "environment.environment comes from a merge key (<<); set the variables where its anchor is defined")
	}
	add := in.toAdd(nil)
	if len(add) == 0 {
		return nil
	}
	switch {
	case flow && len(env.Content) == 0 && !parentFlow && in.emptyFlowOnKeyLine(key, env):
		in.fillNull(key, env, false, "", append([]string{pad(in.col(key)+in.unit) + "environment:"}, in.blockEntries(add, in.col(key)+2*in.unit)...))
	case flow:
		in.flowInsert(env, "environment: {"+in.flowEntries(add)+"}")
	default:
		c := in.col(env.Content[0])
		in.insertAfter(env.Content[len(env.Content)-1], c, append([]string{pad(c) + "environment:"}, in.blockEntries(add, c+in.unit)...), false)
	}
	env.Content = append(env.Content, strNode("environment"), mapNode(varNodes(add)...))
	return nil
}

// varsMap handles environment.environment.
func (in *injector) varsMap(key, m *yaml.Node, parentFlow bool) error {
	switch {
	case m.Kind == yaml.AliasNode:
		return in.d.errAt(m, "environment.environment is an alias (*%s); set the variables where &%s is defined", m.Value, m.Value)
	case isNull(m):
		add := in.toAdd(nil)
		in.fillNull(key, m, parentFlow, "{"+in.flowEntries(add)+"}", in.blockEntries(add, in.col(key)+in.unit))
		*m = *mapNode(varNodes(add)...)
		return nil
	}
	add := in.toAdd(m)
	if len(add) > 0 {
		flow := m.Style&yaml.FlowStyle != 0
		switch {
		case flow && len(m.Content) == 0 && !parentFlow && in.emptyFlowOnKeyLine(key, m):
			in.fillNull(key, m, false, "", in.blockEntries(add, in.col(key)+in.unit))
		case flow:
			in.flowInsert(m, in.flowEntries(add))
		default:
			c := in.col(m.Content[0])
			in.insertAfter(m.Content[len(m.Content)-1], c, in.blockEntries(add, c), false)
		}
		m.Content = append(m.Content, varNodes(add)...)
	}
	return nil
}

// toAdd decides, for each variable, whether the map m (nil when it does not
// exist yet) already has it, needs it replaced (Force) or kept, or needs it
// added; it returns the ones to add and records replacements as edits.
func (in *injector) toAdd(m *yaml.Node) []Var {
	var add []Var
	for _, v := range in.vars {
		k, val := mapGet(m, v.Key)
		if k == nil {
			if mv := mergedGet(m, v.Key); mv != nil {
				val = mv
			}
		}
		if val == nil {
			add = append(add, v)
			in.set = append(in.set, v)
			in.final[v.Key] = v.Value
			continue
		}
		cur := resolve(val).Value
		switch {
		case cur == v.Value:
			in.final[v.Key] = v.Value
		case !in.force:
			pos := val
			if k != nil {
				pos = k
			}
			in.kept = append(in.kept, Kept{Key: v.Key, Value: cur, Want: v.Value, Line: pos.Line, Col: in.t.byteCol(pos.Line, pos.Column)})
			in.final[v.Key] = cur
		case k == nil:
			// Merged in: an explicit key overrides it.
			add = append(add, v)
			in.set = append(in.set, v)
			in.final[v.Key] = v.Value
		default:
			in.replace(k, val, v.Value, m.Style&yaml.FlowStyle != 0)
			in.set = append(in.set, v)
			in.final[v.Key] = v.Value
		}
	}
	return add
}

// replace rewrites the value node val of key k to value.
func (in *injector) replace(k, val *yaml.Node, value string, flow bool) {
	t := in.t
	off := t.offset(val.Line, val.Column)
	content := t.skipProps(off, t.lineEnd(val.Line))
	var end int
	if val.Kind == yaml.ScalarNode && (val.Style&(yaml.LiteralStyle|yaml.FoldedStyle)) != 0 {
		// A block scalar: its header line plus every following line that
		// is blank or indented deeper than the key.
		last := val.Line
		for l := val.Line + 1; l <= t.lines(); l++ {
			if t.blank(l) {
				continue
			}
			if t.indent(l) <= in.col(k) {
				break
			}
			last = l
		}
		end = t.lineEnd(last)
	} else {
		e, ok := t.scalarEnd(content, flow)
		if !ok {
			e = t.lineEnd(val.Line) // let verification refuse what this cannot do
		}
		end = e
	}
	text := render(value, flow)
	if q := val.Style & (yaml.SingleQuotedStyle | yaml.DoubleQuotedStyle); q != 0 && val.Kind == yaml.ScalarNode {
		// Keep the user's quoting style.
		n := strNode(value)
		n.Style = q
		if out, err := yaml.Marshal(n); err == nil && bytes.Count(out, []byte("\n")) == 1 {
			text = strings.TrimSuffix(string(out), "\n")
		}
	}
	if end == off && off > 0 && t.src[off-1] == ':' {
		text = " " + text
	}
	in.edits = append(in.edits, edit{off, end, text})
	*val = *strNode(value)
}

// fillNull turns an empty value (null, ~, or {} on the key's line) into the
// given content: flowText in place when the parent is a flow collection,
// otherwise lines inserted after the key's line.
func (in *injector) fillNull(key, val *yaml.Node, parentFlow bool, flowText string, lines []string) {
	t := in.t
	off := t.offset(val.Line, val.Column)
	le := t.lineEnd(val.Line)
	if parentFlow {
		end, ok := t.scalarEnd(off, true)
		if !ok || end < off {
			end = off
		}
		text := flowText
		if end == off && off > 0 && t.src[off-1] == ':' {
			text = " " + text
		}
		in.edits = append(in.edits, edit{off, end, text})
		return
	}
	// Remove the explicit token (~, null, {}, a tag) and the spaces before
	// it, keeping an anchor, which then names the new mapping, and a
	// trailing comment.
	if off < le && t.src[off] == '&' {
		for off < le && !isSpace(t.src[off]) {
			off++
		}
	}
	if val.Line == key.Line && off < le {
		end := t.commentStart(off, le)
		for end > off && isSpace(t.src[end-1]) {
			end--
		}
		start := off
		for start > 0 && isSpace(t.src[start-1]) {
			start--
		}
		if end > off {
			in.edits = append(in.edits, edit{start, end, ""})
		}
	}
	in.insertLinesAt(key.Line, lines)
}

// emptyFlowOnKeyLine reports whether the empty flow mapping m is written as
// {} on its key's line with at most a comment after it, so it can become a
// block mapping.
func (in *injector) emptyFlowOnKeyLine(key, m *yaml.Node) bool {
	t := in.t
	if m.Line != key.Line {
		return false
	}
	le := t.lineEnd(m.Line)
	open := t.skipProps(t.offset(m.Line, m.Column), le)
	if open >= le || t.src[open] != '{' {
		return false
	}
	i := open + 1
	for i < le && isSpace(t.src[i]) {
		i++
	}
	if i >= le || t.src[i] != '}' {
		return false
	}
	rest := bytes.TrimSpace(t.src[i+1 : le])
	return len(rest) == 0 || rest[0] == '#'
}

// flowInsert adds entries ("K: V, K2: V2") to the flow mapping m.
func (in *injector) flowInsert(m *yaml.Node, entries string) {
	t := in.t
	open := t.skipProps(t.offset(m.Line, m.Column), len(t.src))
	if open >= len(t.src) || t.src[open] != '{' {
		in.fail(m, "cannot find the { of this flow mapping")
		return
	}
	_, lastSig, ok := t.flowSpan(open)
	switch {
	case !ok:
		in.fail(m, "cannot find the end of this flow mapping")
	case len(m.Content) == 0 || lastSig == open:
		in.edits = append(in.edits, edit{open + 1, open + 1, entries})
	case t.src[lastSig] == ',':
		in.edits = append(in.edits, edit{lastSig + 1, lastSig + 1, " " + entries + ","})
	default:
		in.edits = append(in.edits, edit{lastSig + 1, lastSig + 1, ", " + entries})
	}
}

// insertAfter inserts lines after the text of node last (the last value of
// a block mapping whose keys are at column c, 0-based): after its last
// non-blank line, but before comments and document markers indented no
// deeper than c, which belong to what follows. With sep, the lines are separated
// from it by a blank line when the file separates sections that way.
func (in *injector) insertAfter(last *yaml.Node, c int, lines []string, sep bool) {
	t := in.t
	lastStart, next := in.d.span(last)
	l := next - 1
	// Blank lines after a block scalar with keep chomping (|+) are part of
	// its value: insert after them.
	keep := in.keepsTrailingLines(last)
	for l > lastStart && ((t.blank(l) && !keep) || (t.commentOrMarker(l) && t.indent(l) <= c)) {
		l--
	}
	if sep && l < next-1 && t.blank(l+1) {
		lines = append([]string{""}, lines...)
	}
	in.insertLinesAt(l, lines)
}

// fail records the first layout the injector cannot rewrite.
func (in *injector) fail(n *yaml.Node, msg string) {
	if in.err == nil {
		in.err = in.d.errAt(n, "%s; set the variables by hand", msg)
	}
}

// keepsTrailingLines reports whether the last scalar in n's subtree is a
// block scalar with keep chomping (|+ or >+).
func (in *injector) keepsTrailingLines(n *yaml.Node) bool {
	for len(n.Content) > 0 {
		n = n.Content[len(n.Content)-1]
	}
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		return false
	}
	t := in.t
	le := t.lineEnd(n.Line)
	h := t.skipProps(t.offset(n.Line, n.Column), le)
	for ; h < le && !isSpace(t.src[h]); h++ {
		if t.src[h] == '+' {
			return true
		}
	}
	return false
}

// insertLinesAt inserts lines after line l.
func (in *injector) insertLinesAt(l int, lines []string) {
	t := in.t
	var b strings.Builder
	if !t.hasBreak(l) {
		b.WriteString(t.eol)
		b.WriteString(strings.Join(lines, t.eol))
		in.edits = append(in.edits, edit{len(t.src), len(t.src), b.String()})
		return
	}
	for _, s := range lines {
		b.WriteString(s)
		b.WriteString(t.eol)
	}
	at := t.lineStart(l + 1)
	in.edits = append(in.edits, edit{at, at, b.String()})
}

func (in *injector) apply() []byte {
	sort.SliceStable(in.edits, func(i, j int) bool { return in.edits[i].off < in.edits[j].off })
	var out bytes.Buffer
	pos := 0
	for _, e := range in.edits {
		if e.off < pos {
			e.off = pos // overlapping edits cannot happen; stay safe
		}
		out.Write(in.t.src[pos:e.off])
		out.WriteString(e.text)
		pos = max(e.end, e.off)
	}
	out.Write(in.t.src[pos:])
	return out.Bytes()
}

func (in *injector) blockEntries(vars []Var, c int) []string {
	var lines []string
	for _, v := range vars {
		lines = append(lines, pad(c)+render(v.Key, false)+": "+render(v.Value, false))
	}
	return lines
}

func (in *injector) flowEntries(vars []Var) string {
	var parts []string
	for _, v := range vars {
		parts = append(parts, render(v.Key, true)+": "+render(v.Value, true))
	}
	return strings.Join(parts, ", ")
}

// col returns the 0-based byte column of node n, its indentation when it
// starts a line. A key written as an explicit "? key" is indented at its "?".
func (in *injector) col(n *yaml.Node) int {
	c := in.t.byteCol(n.Line, n.Column) - 1
	if ind := in.t.indent(n.Line); ind < c && in.t.src[in.t.lineStart(n.Line)+ind] == '?' {
		return ind
	}
	return c
}

// span returns the last line on which a node of n's subtree starts and the
// line on which the next node in document order starts (one past the last
// line when none follows).
func (d *doc) span(n *yaml.Node) (lastStart, next int) {
	var order []*yaml.Node
	var walk func(*yaml.Node)
	walk = func(x *yaml.Node) {
		order = append(order, x)
		for _, c := range x.Content {
			walk(c)
		}
	}
	walk(d.doc)
	i := 0
	for i < len(order) && order[i] != n {
		i++
	}
	size := 0
	var count func(*yaml.Node)
	count = func(x *yaml.Node) {
		size++
		lastStart = max(lastStart, x.Line)
		for _, c := range x.Content {
			count(c)
		}
	}
	count(n)
	next = d.t.lines() + 1
	for j := i + size; j < len(order); j++ {
		if order[j].Line > 0 {
			next = order[j].Line
			break
		}
	}
	return lastStart, next
}

// detectIndent returns the file's indentation step: the smallest column at
// which a block mapping under a top-level key starts, 2 when there is none.
func detectIndent(root *yaml.Node) int {
	best := 0
	for i := 1; i < len(root.Content); i += 2 {
		v := root.Content[i]
		if v.Kind != yaml.MappingNode || v.Style&yaml.FlowStyle != 0 || len(v.Content) == 0 {
			continue
		}
		d := v.Content[0].Column - root.Content[i-1].Column
		if d > 0 && (best == 0 || d < best) {
			best = d
		}
	}
	if best == 0 {
		return 2
	}
	return best
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func pad(n int) string { return strings.Repeat(" ", n) }

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func mapNode(content ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: content}
}

func varNodes(vars []Var) []*yaml.Node {
	var ns []*yaml.Node
	for _, v := range vars {
		ns = append(ns, strNode(v.Key), strNode(v.Value))
	}
	return ns
}

// yaml11Bools are strings YAML 1.1 parsers read as booleans. yaml.v3 (and
// so melange) reads them as strings, but other tools that touch the file
// may not: they are written quoted.
var yaml11Bools = map[string]bool{}

func init() {
	for _, s := range strings.Fields("y yes on off n no true false") {
		for _, v := range []string{s, strings.ToUpper(s), strings.ToUpper(s[:1]) + s[1:]} {
			yaml11Bools[v] = true
		}
	}
}

// render writes s as a YAML string scalar, quoted only when it must be (or
// when a YAML 1.1 reader would take it for a boolean).
func render(s string, flow bool) string {
	n := strNode(s)
	if yaml11Bools[s] || (flow && strings.ContainsAny(s, ",[]{}#")) {
		n.Style = yaml.DoubleQuotedStyle
	}
	out, err := yaml.Marshal(n)
	r := strings.TrimSuffix(string(out), "\n")
	if err != nil || strings.ContainsAny(r, "\n\r") {
		return strconv.Quote(s)
	}
	return r
}

// verify checks that out decodes to the same data as the (edited) tree.
func verify(want *yaml.Node, out []byte) error {
	var w, g any
	if err := want.Decode(&w); err != nil {
		return err
	}
	if err := yaml.Unmarshal(out, &g); err != nil {
		return fmt.Errorf("output does not parse: %v", err)
	}
	if fmt.Sprintf("%#v", w) != fmt.Sprintf("%#v", g) {
		return fmt.Errorf("output data differs from the input's plus the variables")
	}
	return nil
}
