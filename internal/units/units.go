// Package units parses and formats the sizes and durations melcache's
// commands accept and print: --max-size, --unused-for, --max-age, and the
// byte counts in status, prune, gc and prepare. One home, so that a figure a
// command prints is one another command accepts.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeUnits maps the suffixes ParseSize accepts to their multipliers.
// Decimal SI units (KB, MB, GB, TB) are powers of 1000 and IEC units (KiB,
// MiB, GiB, TiB) powers of 1024, as their standards define. The bare letters
// K, M, G, T are powers of 1024, as du -h, ls -h and sort -h print them: a
// user who copies a figure from `du -sh` gets the size du meant.
var sizeUnits = map[string]float64{
	"": 1, "B": 1,
	"K": 1 << 10, "KB": 1e3, "KIB": 1 << 10,
	"M": 1 << 20, "MB": 1e6, "MIB": 1 << 20,
	"G": 1 << 30, "GB": 1e9, "GIB": 1 << 30,
	"T": 1 << 40, "TB": 1e12, "TIB": 1 << 40,
}

// ParseSize parses a size such as "500MB", "2GiB", "1.5G" or "1048576"
// (bytes). Units are case-insensitive; see sizeUnits for their meaning.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	}
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit, e.g. 500MB, 2GiB, 1.5G", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f*mult, 0) || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit, e.g. 500MB, 2GiB, 1.5G", s)
	}
	return int64(f * mult), nil
}

// FormatSize prints n bytes with an IEC unit, e.g. "1.5 GiB".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// Day is the unit ParseDuration adds to Go's: cache ages are spoken of in
// days (Go trims entries unused for 5 days).
const Day = 24 * time.Hour

// ParseDuration parses a Go duration ("36h", "90m") or a number of days,
// optionally followed by a Go duration ("5d", "1.5d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("invalid duration %q: want a Go duration or days, e.g. 36h, 5d, 1d12h", s)
	var d time.Duration
	if i := strings.IndexByte(t, 'd'); i >= 0 {
		f, err := strconv.ParseFloat(t[:i], 64)
		if err != nil || f < 0 || f > 1e5 {
			return 0, bad
		}
		d = time.Duration(f * float64(Day))
		t = t[i+1:]
		if t == "" {
			return d, nil
		}
	}
	rest, err := time.ParseDuration(t)
	if err != nil || rest < 0 {
		return 0, bad
	}
	return d + rest, nil
}
