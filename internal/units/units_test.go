package units

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
		"5d": 5 * Day, "1.5d": 36 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute,
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

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 29: "1.5 GiB", 1 << 40: "1.0 TiB", 5 << 50: "5.0 PiB",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q; want %q", n, got, want)
		}
	}
}

// TestFormatSizeParses checks that what FormatSize prints, ParseSize reads
// back to within the rounding of the one printed decimal.
func TestFormatSizeParses(t *testing.T) {
	for _, n := range []int64{0, 512, 1 << 20, 3 << 29, 7 << 40} {
		got, err := ParseSize(FormatSize(n))
		if err != nil {
			t.Fatalf("ParseSize(FormatSize(%d) = %q): %v", n, FormatSize(n), err)
		}
		if d := got - n; d > n/20 || d < -n/20 {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d", n, FormatSize(n), got)
		}
	}
}
