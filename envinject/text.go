package envinject

import (
	"bytes"
	"unicode/utf8"
)

// text indexes the lines of a YAML source so that yaml.v3 positions (1-based
// line, 1-based column counted in characters) map to byte offsets. Lines are
// split where libyaml splits them: LF, CRLF, a lone CR, NEL, LS and PS all end
// a line for the parser, so they must here too or positions drift.
type text struct {
	src    []byte
	starts []int // starts[i] is the byte offset of line i+1
	ends   []int // ends[i] is the offset of line i+1's break (or of EOF)
	eol    string
}

func newText(src []byte) *text {
	t := &text{src: src, starts: []int{0}}
	for i := 0; i < len(src); {
		n := breakLen(src, i)
		if n == 0 {
			i++
			continue
		}
		if t.eol == "" {
			t.eol = string(src[i : i+n])
		}
		t.ends = append(t.ends, i)
		i += n
		t.starts = append(t.starts, i)
	}
	t.ends = append(t.ends, len(src))
	if t.eol == "" || (t.eol != "\n" && t.eol != "\r\n") {
		// Inserted lines use the file's own line ending; exotic breaks
		// (CR, NEL, LS, PS) are kept where they are but new lines get LF.
		t.eol = "\n"
	}
	return t
}

// breakLen returns the length of the line break at src[i], or 0.
func breakLen(src []byte, i int) int {
	switch src[i] {
	case '\n':
		return 1
	case '\r':
		if i+1 < len(src) && src[i+1] == '\n' {
			return 2
		}
		return 1
	case 0xC2:
		if i+1 < len(src) && src[i+1] == 0x85 { // NEL
			return 2
		}
	case 0xE2:
		if i+2 < len(src) && src[i+1] == 0x80 && (src[i+2] == 0xA8 || src[i+2] == 0xA9) { // LS, PS
			return 3
		}
	}
	return 0
}

// lines returns the number of lines; a final line break does not start a
// new (empty) line.
func (t *text) lines() int {
	n := len(t.starts)
	if n > 1 && t.starts[n-1] == len(t.src) {
		n--
	}
	return n
}

// lineStart returns the byte offset where line l (1-based) starts.
func (t *text) lineStart(l int) int {
	if l < 1 {
		return 0
	}
	if l > len(t.starts) {
		return len(t.src)
	}
	return t.starts[l-1]
}

// lineEnd returns the byte offset of the end of line l's content, before its
// line break.
func (t *text) lineEnd(l int) int {
	if l < 1 {
		return 0
	}
	if l > len(t.ends) {
		return len(t.src)
	}
	return t.ends[l-1]
}

// hasBreak reports whether line l ends with a line break.
func (t *text) hasBreak(l int) bool { return t.lineEnd(l) < t.lineStart(l+1) }

// line returns line l's content without its break.
func (t *text) line(l int) []byte { return t.src[t.lineStart(l):t.lineEnd(l)] }

// offset converts a yaml.v3 position to a byte offset.
func (t *text) offset(line, col int) int {
	off := t.lineStart(line)
	end := t.lineEnd(line)
	for c := 1; c < col && off < end; c++ {
		_, n := utf8.DecodeRune(t.src[off:end])
		off += n
	}
	return off
}

// byteCol converts a yaml.v3 (character) column on line to a 1-based byte
// column, the convention of Go's own tools.
func (t *text) byteCol(line, col int) int { return t.offset(line, col) - t.lineStart(line) + 1 }

// pos returns the 1-based line and byte column of offset off.
func (t *text) pos(off int) (line, col int) {
	lo, hi := 0, len(t.starts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if t.starts[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo + 1, off - t.starts[lo] + 1
}

// indent returns the number of leading spaces of line l.
func (t *text) indent(l int) int {
	b := t.line(l)
	n := 0
	for n < len(b) && b[n] == ' ' {
		n++
	}
	return n
}

// blank reports whether line l holds only spaces and tabs.
func (t *text) blank(l int) bool { return len(bytes.Trim(t.line(l), " \t")) == 0 }

// commentOrMarker reports whether line l is a comment line or a document
// marker (--- or ...), which belong to what follows rather than what precedes.
func (t *text) commentOrMarker(l int) bool {
	b := bytes.TrimLeft(t.line(l), " \t")
	return bytes.HasPrefix(b, []byte("#")) || bytes.HasPrefix(b, []byte("---")) || bytes.HasPrefix(b, []byte("..."))
}

// commentStart returns the offset of a comment that starts in src[from:to],
// or to when there is none. It is only used on text known to hold no quoted
// scalar (after a plain token such as ~ or {}).
func (t *text) commentStart(from, to int) int {
	for i := from; i < to; i++ {
		if t.src[i] == '#' && (i == from || t.src[i-1] == ' ' || t.src[i-1] == '\t') {
			return i
		}
	}
	return to
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// skipProps skips spaces, anchors (&a) and tags (!t) from off and returns the
// offset of the node's content.
func (t *text) skipProps(off, end int) int {
	for off < end {
		c := t.src[off]
		switch {
		case isSpace(c):
			off++
		case c == '&' || c == '!':
			for off < end && !isSpace(t.src[off]) && breakLen(t.src, off) == 0 {
				off++
			}
		default:
			return off
		}
	}
	return off
}

// flowSpan scans the flow collection whose opening bracket is at open. It
// returns the offset of the matching closing bracket and the offset of the
// last significant (non-space, non-comment) byte before it.
func (t *text) flowSpan(open int) (closeAt, lastSig int, ok bool) {
	src := t.src
	depth := 0
	lastSig = open
	tokenStart := true
	for i := open; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '{' || c == '[':
			depth++
			lastSig, tokenStart = i, true
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return i, lastSig, true
			}
			lastSig, tokenStart = i, false
		case c == ',' || c == ':' || c == '?':
			lastSig, tokenStart = i, true
		case isSpace(c) || c == '\n' || c == '\r':
		case c == '#' && (isSpace(src[i-1]) || src[i-1] == '\n' || src[i-1] == '\r'):
			for i < len(src) && breakLen(src, i) == 0 {
				i++
			}
		case (c == '"' || c == '\'') && tokenStart:
			j := i + 1
			for ; j < len(src); j++ {
				if c == '"' && src[j] == '\\' {
					j++
					continue
				}
				if src[j] == c {
					if c == '\'' && j+1 < len(src) && src[j+1] == '\'' {
						j++
						continue
					}
					break
				}
			}
			if j >= len(src) {
				return 0, 0, false
			}
			i = j
			lastSig, tokenStart = j, false
		default:
			lastSig, tokenStart = i, false
		}
	}
	return 0, 0, false
}

// scalarEnd returns the end offset of a single-line scalar token starting at
// off (after its properties): a quoted scalar up to its closing quote, a
// plain one up to a comment, the end of the line or, in flow context, a flow
// indicator. ok is false when the scalar continues on another line.
func (t *text) scalarEnd(off int, flow bool) (end int, ok bool) {
	line, _ := t.pos(off)
	le := t.lineEnd(line)
	src := t.src
	if off >= le {
		return off, true
	}
	switch q := src[off]; q {
	case '"', '\'':
		for j := off + 1; j < le; j++ {
			if q == '"' && src[j] == '\\' {
				j++
				continue
			}
			if src[j] == q {
				if q == '\'' && j+1 < le && src[j+1] == '\'' {
					j++
					continue
				}
				return j + 1, true
			}
		}
		return 0, false
	}
	end = off
	for j := off; j < le; j++ {
		c := src[j]
		if c == '#' && j > off && isSpace(src[j-1]) {
			break
		}
		if flow && (c == ',' || c == '}' || c == ']') {
			break
		}
		if !isSpace(c) {
			end = j + 1
		}
	}
	return end, true
}
