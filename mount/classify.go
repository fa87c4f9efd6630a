package mount

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// OutputClass is what a GOCACHE output ("-d") holds, told by its first
// bytes. Only compiled package archives are compile actions; the other
// classes are Go's bookkeeping, whose keys can change on every build
// without any package being compiled (docs/background.md, "Use marks and
// trimming").
type OutputClass int

// Output classes.
const (
	// OutputOther is anything else: test and vet results, cgo and embed
	// bookkeeping, compiler messages, an output that is missing.
	OutputOther OutputClass = iota
	// OutputArchive is a compiled package (the compile action's .a file).
	OutputArchive
	// OutputModIndex is a module-index entry (cmd/go/internal/modindex).
	// Its key includes the mtimes of the indexed files, so a GOROOT whose
	// files are extracted anew (apk in melange) rewrites the standard
	// library's entries on every build.
	OutputModIndex
	// OutputExecutable is a cached executable: an ELF file, or an output
	// directory (Go 1.24 and later cache `go run` and `go tool` binaries
	// in "-d" directories).
	OutputExecutable
)

// Magic prefixes, from the formats' writers: cmd/internal/archive (the
// "!<arch>\n" of every archive cmd/compile writes), cmd/go/internal/modindex
// (indexVersion "go index v2", followed by a newline), and the ELF header.
var (
	archiveMagic  = []byte("!<arch>\n")
	modIndexMagic = []byte("go index v2")
	elfMagic      = []byte("\x7fELF")
)

// classifyPrefix is how many bytes ClassifyOutput reads: the longest magic.
const classifyPrefix = 11

func (c OutputClass) String() string {
	switch c {
	case OutputArchive:
		return "archive"
	case OutputModIndex:
		return "module-index"
	case OutputExecutable:
		return "executable"
	}
	return "other"
}

// ClassifyOutput classifies a GOCACHE output file by its first bytes. It
// reads at most a few bytes of r; a read error or a short file that
// matches no magic is OutputOther.
func ClassifyOutput(r io.Reader) OutputClass {
	b := make([]byte, classifyPrefix)
	n, _ := io.ReadFull(r, b)
	b = b[:n]
	switch {
	case bytes.HasPrefix(b, archiveMagic):
		return OutputArchive
	case bytes.HasPrefix(b, modIndexMagic):
		return OutputModIndex
	case bytes.HasPrefix(b, elfMagic):
		return OutputExecutable
	}
	return OutputOther
}

// ClassifyAction classifies the action ("-a") entry at path in the build
// cache gocache by the output it names: it reads the entry, then the first
// bytes of its "-d". An "-a" entry that does not parse is an error; an
// output that is missing (trimmed, or never written) is OutputOther.
func ClassifyAction(gocache, path string) (OutputClass, error) {
	id, ok := strings.CutSuffix(filepath.Base(path), actionSuffix)
	if !ok {
		return OutputOther, fmt.Errorf("%s: not an action (%q) entry", path, actionSuffix)
	}
	a, err := readActionEntry(goCacheEntry{path: path, id: id})
	if err != nil {
		return OutputOther, fmt.Errorf("%s: %w", path, err)
	}
	return classifyOutputID(gocache, a.out), nil
}

// classifyOutputID classifies the output with the given hex id in gocache.
func classifyOutputID(gocache, out string) OutputClass {
	p := filepath.Join(gocache, out[:2], out+outputSuffix)
	fi, err := os.Lstat(p)
	switch {
	case err != nil:
		return OutputOther
	case fi.IsDir():
		return OutputExecutable
	case !fi.Mode().IsRegular():
		return OutputOther // a link planted by an untrusted build: not followed
	}
	// O_NOFOLLOW: a link swapped in after the Lstat is not followed.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return OutputOther
	}
	defer f.Close()
	return ClassifyOutput(f)
}

// actionTimeOffset is where an action entry's time field starts: the last
// 20 bytes before the newline.
const actionTimeOffset = actionEntryLen - 1 - 20

// ActionWithTime returns a copy of the action entry b with its time field
// set to t, formatted as Go writes it (%20d). b must be ActionEntryLen
// bytes; anything else is returned unchanged (copied).
func ActionWithTime(b []byte, t int64) []byte {
	out := append([]byte(nil), b...)
	if len(b) != actionEntryLen || t < 0 {
		return out
	}
	copy(out[actionTimeOffset:], fmt.Sprintf("%20d", t))
	return out
}

// ActionID returns the action id of a GOCACHE path relative to the cache
// root ("ab/ab12…-a"), and false when rel does not name an action entry.
func ActionID(rel string) (string, bool) {
	dir, name, ok := strings.Cut(rel, "/")
	if !ok || len(dir) != 2 {
		return "", false
	}
	id, ok := strings.CutSuffix(name, actionSuffix)
	if !ok || !isHex(id, hexHashSize) || id[:2] != dir {
		return "", false
	}
	return id, true
}
