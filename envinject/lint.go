package envinject

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// cacheVars are the variables the linter follows: Go's, which melcache
// sets, and melangeCacheVars.
var cacheVars = map[string]string{"GOMODCACHE": DefaultGoModCache, "GOCACHE": DefaultGoCache}

// MelangeCacheVars are the cache variables melange's pkg/config/config.go
// sets, when the config leaves them empty, to a directory of the mount (at
// melange 2043d30b). The linter reports a config that points one outside
// GuestRoot, where the cache dies with the build. mount's cache registry
// names the same directories (a mount test checks they agree).
var MelangeCacheVars = map[string]string{
	"UV_CACHE_DIR":       GuestRoot + "/uv",
	"PIP_CACHE_DIR":      GuestRoot + "/pip",
	"COMPOSER_CACHE_DIR": GuestRoot + "/composer",
	"npm_config_cache":   GuestRoot + "/npm",
}

// lintedVar returns the canonical name of a variable the linter follows,
// or "" for another. npm reads npm_config_* in any case, so
// NPM_CONFIG_CACHE is npm_config_cache.
func lintedVar(name string) string {
	if _, ok := cacheVars[name]; ok {
		return name
	}
	for k := range MelangeCacheVars {
		if name == k || (k == "npm_config_cache" && strings.EqualFold(name, k)) {
			return k
		}
	}
	return ""
}

// linter checks a config's cache settings for ones that defeat the cache.
// final holds the value each variable has in the top-level environment after
// injection (the injected value, or the user's kept one).
type linter struct {
	d        *doc
	final    map[string]string
	goBuild  *yaml.Node // the first go/build uses: value, if any
	findings []Finding
}

func lint(c *Config, final map[string]string) []Finding {
	d := c.doc
	l := &linter{d: d, final: final, goBuild: c.goBuildUses()}
	root := d.root
	var vars *yaml.Node
	if env := resolve(lookup(root, "environment")); env != nil {
		vars = resolve(lookup(env, "environment"))
		l.topEnv(vars)
	}
	if k, _ := mapGet(vars, "GOMODCACHE"); (k == nil || k.Line == 0) && l.goBuild != nil && mergedGet(vars, "GOMODCACHE") == nil {
		// The value is Inject's own (--gomodcache): point at the step.
		if mod := final["GOMODCACHE"]; judgeable(mod) && underGuestRoot(mod) && path.Clean(mod) != DefaultGoModCache {
			u := l.goBuild
			l.add(u.Line, d.t.byteCol(u.Line, u.Column), splitMsg(mod),
				"inject with the default --gomodcache "+DefaultGoModCache+", the path go/build uses")
		}
	}
	l.test(c.Test, "test")
	for i := range c.Subpackages {
		sp := &c.Subpackages[i]
		l.test(sp.Test, sp.where()+" test")
	}
	for _, s := range c.Steps() {
		l.step(s)
	}
	sort.SliceStable(l.findings, func(i, j int) bool {
		a, b := l.findings[i], l.findings[j]
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
	return l.findings
}

// topEnv checks the top-level environment.environment map.
func (l *linter) topEnv(m *yaml.Node) {
	for _, kv := range entries(m) {
		k, v := kv[0], kv[1]
		name := lintedVar(k.Value)
		if name == "" || k.Line == 0 || resolve(v).Kind != yaml.ScalarNode {
			continue // Line 0: written by Inject
		}
		val := resolve(v).Value
		line, col := k.Line, l.d.t.byteCol(k.Line, k.Column)
		switch def, melange := MelangeCacheVars[name]; {
		case melange && outside(val):
			l.add(line, col,
				fmt.Sprintf("%s: %s is outside %s, so that cache does not survive the build", k.Value, val, GuestRoot),
				fmt.Sprintf("remove it (melange then sets %s=%s), or set %s: %s", name, def, k.Value, def))
		case melange:
		case k.Value == "GOMODCACHE" && l.goBuild != nil && judgeable(val) && underGuestRoot(expand(val)) && path.Clean(val) != DefaultGoModCache:
			l.add(line, col, splitMsg(val), splitFix)
		case outside(val):
			l.add(line, col,
				fmt.Sprintf("%s: %s is outside %s, so it does not survive the build", k.Value, val, GuestRoot),
				fmt.Sprintf("set %s: %s (melcache inject --force)", k.Value, cacheVars[k.Value]))
		}
	}
}

// splitMsg and splitFix describe a module cache split between go/build
// steps, which export GOMODCACHE=DefaultGoModCache whatever the environment
// says, and everything else, which uses the configured path.
func splitMsg(mod string) string {
	return "GOMODCACHE: " + mod + " next to go/build steps, which export GOMODCACHE=" + DefaultGoModCache + ": the module cache is split in two"
}

const splitFix = "set GOMODCACHE: " + DefaultGoModCache + " (melcache inject --force) and keep --cache-dir on the parent directory"

// test checks the environment of a test: block (the package's or a
// subpackage's); its steps are checked with the others.
func (l *linter) test(t *Test, where string) {
	if t == nil || t.Node == nil || t.Node.Kind != yaml.MappingNode {
		return
	}
	if env := resolve(lookup(t.Node, "environment")); env != nil {
		l.override(resolve(lookup(env, "environment")), where+" environment")
	}
}

// step checks a pipeline step: its environment and its runs script.
func (l *linter) step(s StepAt) {
	n := s.Node
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	l.override(resolve(lookup(n, "environment")), s.Where+" step environment")
	if k, v := mapGet(n, "runs"); k != nil && v.Kind == yaml.ScalarNode {
		l.script(k, v)
	}
}

// override checks a test or step environment map that sets a cache
// variable: outside GuestRoot it loses the cache; inside but different from
// the top-level value it splits it.
func (l *linter) override(m *yaml.Node, where string) {
	for _, kv := range entries(m) {
		k, v := kv[0], kv[1]
		if lintedVar(k.Value) == "" || resolve(v).Kind != yaml.ScalarNode {
			continue
		}
		l.check(k.Line, l.d.t.byteCol(k.Line, k.Column), k.Value, resolve(v).Value, where+" sets",
			"remove it: tests and steps inherit "+k.Value+" from the top-level environment")
	}
}

func (l *linter) check(line, col int, key, val, what, fix string) {
	switch {
	case outside(val):
		l.add(line, col, fmt.Sprintf("%s %s=%s, outside %s: that cache does not survive the build", what, key, val, GuestRoot), fix)
	case judgeable(val) && l.final[key] != "" && judgeable(l.final[key]) && path.Clean(val) != path.Clean(l.final[key]):
		l.add(line, col, fmt.Sprintf("%s %s=%s, overriding the top-level %s: the cache is split", what, key, val, l.final[key]), fix)
	}
}

// script checks the export statements of a runs: script. Positions point
// into the original text, inside block scalars too.
func (l *linter) script(k, v *yaml.Node) {
	t := l.d.t
	keyCol := l.d.t.byteCol(k.Line, k.Column) - 1
	first, from := v.Line, t.offset(v.Line, v.Column)
	if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		first++
		from = t.lineStart(first)
	}
	for ln := first; ln <= t.lines(); ln++ {
		if ln > v.Line && !t.blank(ln) && t.indent(ln) <= keyCol {
			break
		}
		start := t.lineStart(ln)
		if ln == first {
			start = from
		}
		base := start - t.lineStart(ln)
		for _, e := range exports(t.src[start:t.lineEnd(ln)]) {
			if lintedVar(e.name) != "" {
				l.check(ln, base+e.col+1, e.name, e.value, "runs: script exports",
					"delete the export: the top-level environment sets "+e.name)
			}
		}
	}
}

func (l *linter) add(line, col int, msg, fix string) {
	l.findings = append(l.findings, Finding{Line: line, Col: col, Msg: msg, Fix: fix})
}

type export struct {
	name, value string
	col         int // 0-based byte offset of name in the line
}

// exports finds "export NAME=VALUE ..." statements in one shell line.
func exports(line []byte) []export {
	s := stripShellComment(string(line))
	var out []export
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "export")
		if j < 0 {
			break
		}
		j += i
		i = j + len("export")
		if j > 0 && !strings.ContainsRune(" \t;&|(", rune(s[j-1])) || i >= len(s) || (s[i] != ' ' && s[i] != '\t') {
			continue
		}
		for i < len(s) {
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			if i >= len(s) || strings.ContainsRune(";&|)#", rune(s[i])) {
				break
			}
			start := i
			var word strings.Builder
			var q byte
			for ; i < len(s); i++ {
				c := s[i]
				if q != 0 {
					if c == q {
						q = 0
					} else {
						word.WriteByte(c)
					}
					continue
				}
				if c == '"' || c == '\'' {
					q = c
					continue
				}
				if c == ' ' || c == '\t' || strings.ContainsRune(";&|)", rune(c)) {
					break
				}
				word.WriteByte(c)
			}
			if name, val, ok := strings.Cut(word.String(), "="); ok {
				out = append(out, export{name, val, start})
			}
		}
	}
	return out
}

// stripShellComment cuts s at a # that starts a word outside quotes.
func stripShellComment(s string) string {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t' || s[i-1] == ';'):
			return s[:i]
		}
	}
	return s
}

// entries returns the explicit key/value pairs of mapping m.
func entries(m *yaml.Node) [][2]*yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!str" {
			out = append(out, [2]*yaml.Node{k, m.Content[i+1]})
		}
	}
	return out
}

// expand resolves the variables melange itself fixes (HOME, GOPATH) so
// $HOME/.cache/go-build is judged like /home/build/.cache/go-build.
func expand(v string) string {
	for _, r := range [][2]string{{"${HOME}", melangeHome}, {"$HOME", melangeHome}, {"${GOPATH}", melangeHome + "/.cache/go"}, {"$GOPATH", melangeHome + "/.cache/go"}} {
		v = strings.ReplaceAll(v, r[0], r[1])
	}
	return v
}

// judgeable reports whether v is a path whose place can be known: no
// ${{...}} substitution or unknown shell variable left.
func judgeable(v string) bool {
	v = expand(v)
	return v != "" && !strings.Contains(v, "$")
}

// outside reports whether v surely points outside GuestRoot.
func outside(v string) bool { return judgeable(v) && !underGuestRoot(expand(v)) }

// goBuildUses returns the uses: value of the first step (in the file) that
// runs a go/build pipeline (go/build, go/build/v2), which exports
// GOMODCACHE=/var/cache/melange/gomodcache unconditionally; nil if none.
func (c *Config) goBuildUses() *yaml.Node {
	var found *yaml.Node
	for _, s := range c.Steps() {
		if !strings.HasPrefix(s.Uses, "go/build") || s.Node == nil {
			continue
		}
		u := lookup(s.Node, "uses")
		if u == nil {
			continue
		}
		if found == nil || u.Line < found.Line || (u.Line == found.Line && u.Column < found.Column) {
			found = u
		}
	}
	return found
}
