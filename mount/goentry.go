package mount

import (
	"fmt"
	"time"
)

// The GOCACHE entry format for other packages (cacheprog writes entries Go
// reads, and reads entries Go wrote): one home, the parser in scan.go.

// GoCacheHashSize is the size of Go's action and output IDs (SHA-256).
const GoCacheHashSize = hashSize

// ActionEntryLen is the exact length of an "-a" entry.
const ActionEntryLen = actionEntryLen

// ActionEntry is the content of an "-a" entry: the action it is stored
// under, its output (lowercase hex), the output's size and when Go wrote
// it.
type ActionEntry struct {
	ID, Out string
	Size    int64
	Time    time.Time
}

// ParseActionEntry parses an "-a" entry exactly as cmd/go/internal/cache
// does and checks that it names id (lowercase hex): the output ID it
// returns is lowercase hex of the right length, safe to build a name from.
func ParseActionEntry(b []byte, id string) (ActionEntry, error) {
	e, err := parseActionEntry(b, id)
	if err != nil {
		return ActionEntry{}, err
	}
	return ActionEntry{ID: e.id, Out: e.out, Size: e.size, Time: e.time}, nil
}

// Format returns the entry as Go's DiskCache.putIndexEntry writes it
// ("v1 %x %x %20d %20d\n"), so plain go and every melcache command read it.
func (e ActionEntry) Format() []byte {
	return fmt.Appendf(nil, "v1 %s %s %20d %20d\n", e.ID, e.Out, e.Size, e.Time.UnixNano())
}

// IsGoCacheID reports whether s names a GOCACHE entry: exactly 64
// lowercase hex digits, as Go names them.
func IsGoCacheID(s string) bool { return isHex(s, hexHashSize) }
