package envinject

import "github.com/rogpeppe/go-internal/diff"

// Diff returns a unified diff from a (named oldName) to b (named newName),
// or nil when they are equal. It is go-internal's anchored diff, the one
// cmd/go and gofmt use: three lines of context, lines without a final
// newline marked as diff -u marks them, and a first line
// "diff oldName newName" that patch skips, so the diff applies with patch.
// It runs in O(n log n), so a large file costs no more than a small one.
func Diff(oldName, newName string, a, b []byte) []byte {
	return diff.Diff(oldName, a, newName, b)
}
