package mount

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "500MB": 500e6, "500mb": 500e6, "2GiB": 2 << 30,
		"1.5G": 3 << 29, "10K": 10 << 10, "1 GB": 1e9, "3B": 3, "1TiB": 1 << 40,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-1G", "1.2.3G", "12XB", "lots", "1e400G"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"5d": 5 * day, "1.5d": 36 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "5", "-5d", "5days", "1d-2h", "forever"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

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
