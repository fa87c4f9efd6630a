// Package safetext makes strings that come from a snapshot or a registry
// safe to print on a terminal. Everything in a snapshot (arch, Go version,
// annotations, tags in an OCI layout's index.json, paths) may have been
// written by an untrusted build or pusher, and a raw ESC sequence printed
// by melcache could retitle the window, clear the screen, hide text or
// worse (issue 11, finding 11). Control characters are escaped the way
// strconv.Quote escapes them; printable UTF-8 is kept as it is.
package safetext

import (
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// unsafeRune reports whether r must not reach a terminal raw: C0 and C1
// controls, DEL, and the bidirectional overrides and isolates, which
// reorder what a terminal shows ("Trojan Source").
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r): // C0, DEL, C1
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return true
	}
	return false
}

// Text returns s with every control character (newlines and tabs
// included), bidi control and invalid UTF-8 byte escaped as strconv.Quote
// would write it (\x1b, \n, \u202e, \xff), and the rest unchanged. Use it
// for one value printed from a snapshot or a registry.
func Text(s string) string {
	return escape(s, false)
}

// Lines is Text keeping newlines and tabs: for a message of several lines
// of melcache's own making that quotes untrusted values.
func Lines(s string) string {
	return escape(s, true)
}

// escape is Text; with layout set, newlines and tabs are kept (they lay
// out whole lines of output, as the Writer passes them).
func escape(s string, layout bool) string {
	clean := true
	for i, r := range s {
		if r == utf8.RuneError && !isRealRuneError(s[i:]) || unsafeRune(r) && !(layout && (r == '\n' || r == '\t')) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[0])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[0])&0xf, 16))
		case unsafeRune(r) && !(layout && (r == '\n' || r == '\t')):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// isRealRuneError reports whether s starts with an encoded U+FFFD rather
// than an invalid byte.
func isRealRuneError(s string) bool {
	_, n := utf8.DecodeRuneInString(s)
	return n == 3
}

// Writer escapes what Text escapes, except newlines and tabs, in a stream:
// a command's whole output can pass through it, so a snapshot string
// printed anywhere cannot carry a raw escape sequence. A rune split across
// writes is held until its end arrives.
type Writer struct {
	w    io.Writer
	tail []byte // an incomplete UTF-8 sequence from the last write
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (sw *Writer) Write(p []byte) (int, error) {
	buf := append(sw.tail, p...)
	sw.tail = nil
	// Hold back a trailing incomplete rune (at most 3 bytes).
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-3; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	sw.tail = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(sw.w, escape(string(buf[:cut]), true)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Unwrap returns the writer under sw, for output passed through as is.
// Call Flush first if sw may hold part of a rune.
func (sw *Writer) Unwrap() io.Writer { return sw.w }

// Flush writes a held incomplete rune, escaped.
func (sw *Writer) Flush() error {
	if len(sw.tail) == 0 {
		return nil
	}
	t := sw.tail
	sw.tail = nil
	_, err := io.WriteString(sw.w, escape(string(t), true))
	return err
}
