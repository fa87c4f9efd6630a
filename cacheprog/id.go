package cacheprog

import (
	"encoding/hex"
	"fmt"
	"path"

	"github.com/melcache/melcache/mount"
)

// ID is an action or output ID: a SHA-256 as Go names cache entries. An ID
// is only made by ParseID or ParseHexID, so its hex form is always 64
// lowercase hex digits, and the names built from it stay inside the cache.
type ID struct{ hex string }

// ParseID checks a request's ID bytes: exactly 32 of them. Anything else
// ("../x", a short or long ID) is refused before any path is built.
func ParseID(b []byte) (ID, error) {
	if len(b) != mount.GoCacheHashSize {
		return ID{}, fmt.Errorf("ID of %d bytes, want %d", len(b), mount.GoCacheHashSize)
	}
	return ID{hex: hex.EncodeToString(b)}, nil
}

// ParseHexID checks an ID read from the cache dir (an "-a" entry's output):
// 64 lowercase hex digits.
func ParseHexID(s string) (ID, error) {
	if !mount.IsGoCacheID(s) {
		return ID{}, fmt.Errorf("ID %q is not %d lowercase hex digits", s, 2*mount.GoCacheHashSize)
	}
	return ID{hex: s}, nil
}

// String is the ID in lowercase hex.
func (id ID) String() string { return id.hex }

// Bytes is the ID's 32 bytes.
func (id ID) Bytes() []byte {
	b, _ := hex.DecodeString(id.hex)
	return b
}

// IsZero reports an ID that was never parsed.
func (id ID) IsZero() bool { return id.hex == "" }

// shard is the subdirectory Go keeps the ID's entries in: its first byte.
func (id ID) shard() string { return id.hex[:2] }

// name is the entry's name relative to GOCACHE: "NN/ID-a" or "NN/ID-d".
func (id ID) name(kind string) string { return path.Join(id.shard(), id.hex+"-"+kind) }
