package safetext

import (
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"amd64":                   "amd64",
		"go1.26 — ünïcödé 日本":     "go1.26 — ünïcödé 日本",
		"x\x1b]0;pwned\x07y":      `x\x1b]0;pwned\ay`,
		"\x1b[2J\x1b[31mred":      `\x1b[2J\x1b[31mred`,
		"a\nb\tc\rd":              `a\nb\tc\rd`,
		"\u009b31m":               `\u009b31m`,
		"abc\u202ecba":            `abc\u202ecba`,
		"bad\xffbyte":             `bad\xffbyte`,
		"real \ufffd replacement": "real \ufffd replacement",
		"\x7f":                    `\x7f`,
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriter(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	in := "col1\tcol2\nünï\x1b[2Jx\n日本"
	// Byte by byte: runes split across writes stay whole.
	for i := 0; i < len(in); i++ {
		if _, err := w.Write([]byte{in[i]}); err != nil {
			t.Fatal(err)
		}
	}
	w.Write([]byte("\xe6"))
	w.Flush()
	if want := "col1\tcol2\nünï\\x1b[2Jx\n日本\\xe6"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}
