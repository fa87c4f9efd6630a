package mount

import (
	"fmt"
	"strings"
	"testing"
)

// TestActionHelpers: the exported action-entry helpers parse Go's format,
// replace only the time field, and name only real action paths.
func TestActionHelpers(t *testing.T) {
	id, out := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	b := []byte(fmt.Sprintf("v1 %s %s %20d %20d\n", id, out, 175, int64(1764410000123456789)))
	a, err := ParseActionEntry(b, id)
	if err != nil || a.Out != out || a.Size != 175 || a.Time.UnixNano() != 1764410000123456789 {
		t.Fatalf("ParseActionEntry = %+v, %v", a, err)
	}
	if string(a.Format()) != string(b) {
		t.Errorf("Format = %q, want %q", a.Format(), b)
	}
	if _, err := ParseActionEntry(b, strings.Repeat("ef", 32)); err == nil {
		t.Error("ParseActionEntry accepted an entry stored under another action id")
	}
	r := ActionWithTime(b, 7)
	want := fmt.Sprintf("v1 %s %s %20d %20d\n", id, out, 175, 7)
	if string(r) != want || len(b) != ActionEntryLen || string(b) == want {
		t.Fatalf("ActionWithTime = %q (input %q), want %q", r, b, want)
	}
	if got := ActionWithTime(b[:10], 7); string(got) != string(b[:10]) {
		t.Errorf("ActionWithTime changed a short entry: %q", got)
	}
	for rel, ok := range map[string]bool{
		"ab/" + id + "-a":                  true,
		"cd/" + id + "-a":                  false, // wrong shard
		"ab/" + id + "-d":                  false,
		"ab/" + strings.ToUpper(id) + "-a": false,
		id + "-a":                          false,
		"ab/x/" + id + "-a":                false,
	} {
		if got, g := ActionID(rel); g != ok || ok && got != id {
			t.Errorf("ActionID(%q) = %q, %v; want %v", rel, got, g, ok)
		}
	}
}
