package oci

import (
	"strings"
	"testing"
)

// TestGoCacheDataID: the names of GOCACHE outputs, and nothing else.
func TestGoCacheDataID(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for p, want := range map[string]bool{
		"01/" + id + "-d":                      true,
		"ff/" + id + "-d":                      true,
		"01/" + id + "-a":                      false,
		"0g/" + id + "-d":                      false,
		"01/" + strings.ToUpper(id) + "-d":     false,
		"01/" + id[1:] + "-d":                  false,
		"01/" + id + "0-d":                     false,
		"01x" + id + "-d":                      false,
		"001/" + id[1:] + "-d":                 false,
		"01/" + id + "-d/":                     false,
		"../../../../../../../../x" + id + "-": false,
	} {
		got, ok := goCacheDataID(p)
		if ok != want || (ok && got != id) {
			t.Errorf("goCacheDataID(%q) = %q, %v; want %v", p, got, ok, want)
		}
	}
}
