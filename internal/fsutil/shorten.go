package fsutil

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxPathInMessage bounds how much of one path (or any other run of
// non-space text) an error message shows. Paths may be up to PATH_MAX
// (4096 bytes); an error naming two of them, staging and final, was 8 KB.
// The head and tail say which file it is.
const maxPathInMessage = 240

// pathEllipsisKeep is how many bytes of each end ShortPath keeps.
const pathEllipsisKeep = maxPathInMessage/2 - 12

// ShortPath returns p unchanged when it is at most maxPathInMessage bytes,
// else its head and tail around "…(N bytes)…", cut at UTF-8 boundaries.
func ShortPath(p string) string {
	if len(p) <= maxPathInMessage {
		return p
	}
	head, tail := pathEllipsisKeep, len(p)-pathEllipsisKeep
	for head > 0 && !utf8.RuneStart(p[head]) {
		head--
	}
	for tail < len(p) && !utf8.RuneStart(p[tail]) {
		tail++
	}
	return p[:head] + "…(" + strconv.Itoa(len(p)) + " bytes)…" + p[tail:]
}

// BoundedError wraps err so that its message shortens every over-long
// run of non-space text (a path, usually) with ShortPath. errors.Is and
// errors.As see err.
func BoundedError(err error) error {
	if err == nil {
		return nil
	}
	return boundedError{err}
}

type boundedError struct{ err error }

func (b boundedError) Unwrap() error { return b.err }

func (b boundedError) Error() string {
	msg := b.err.Error()
	if len(msg) <= maxPathInMessage {
		return msg
	}
	var sb strings.Builder
	for i := 0; i < len(msg); {
		j := strings.IndexByte(msg[i:], ' ')
		if j < 0 {
			j = len(msg) - i
		}
		sb.WriteString(ShortPath(msg[i : i+j]))
		i += j
		if i < len(msg) {
			sb.WriteByte(' ')
			i++
		}
	}
	return sb.String()
}
