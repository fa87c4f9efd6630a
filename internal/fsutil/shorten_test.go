package fsutil

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestShortPathAndBoundedError(t *testing.T) {
	if got := ShortPath("/a/b"); got != "/a/b" {
		t.Fatalf("short path changed: %q", got)
	}
	long := "/dir/" + strings.Repeat("é", 2000) + "/tail-name"
	sp := ShortPath(long)
	if len(sp) > maxPathInMessage || !strings.HasPrefix(sp, "/dir/") || !strings.HasSuffix(sp, "/tail-name") || !strings.Contains(sp, "(4015 bytes)") {
		t.Fatalf("ShortPath: %d bytes: %q", len(sp), sp)
	}
	base := &fs.PathError{Op: "open", Path: long, Err: fs.ErrPermission}
	err := BoundedError(base)
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatal("BoundedError hides the cause")
	}
	if msg := err.Error(); len(msg) > 2*maxPathInMessage || !strings.HasPrefix(msg, "open /dir/") || !strings.HasSuffix(msg, "permission denied") {
		t.Fatalf("bounded message: %d bytes: %q", len(msg), msg)
	}
}
