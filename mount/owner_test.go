package mount

import "testing"

func TestParseOwner(t *testing.T) {
	for in, want := range map[string]Owner{"1000:1000": {1000, 1000}, "0:0": {0, 0}, "1000": {1000, 1000}, "1000:50": {1000, 50}} {
		got, err := ParseOwner(in)
		if err != nil || got != want {
			t.Errorf("ParseOwner(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":", "build:build", "1000:", "-1:0", "4294967295:0", "1000:1000:1"} {
		if _, err := ParseOwner(in); err == nil {
			t.Errorf("ParseOwner(%q) succeeded", in)
		}
	}
}
