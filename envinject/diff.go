package envinject

import (
	"bytes"
	"fmt"
)

// diffContext is the number of unchanged lines around each hunk, as in
// diff -u and gofmt -d.
const diffContext = 3

// maxLCSCells bounds the quadratic line matching of Diff. Injection changes
// one region of a file, so the differing middle is small; past the bound the
// middle is shown as removed and re-added, which is still a correct diff.
const maxLCSCells = 4 << 20

// Diff returns a unified diff from a (named oldName) to b (named newName),
// or nil when they are equal. Lines without a final newline are marked as
// diff -u marks them, so the diff applies with patch.
func Diff(oldName, newName string, a, b []byte) []byte {
	if bytes.Equal(a, b) {
		return nil
	}
	x, y := splitLines(a), splitLines(b)
	ops := diffOps(x, y)
	var out bytes.Buffer
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", oldName, newName)
	for i := 0; i < len(ops); {
		// Find the next change.
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(i-diffContext, 0)
		end := i
		// Extend the hunk while changes are close enough to share context.
		for j := i; j < len(ops); j++ {
			if ops[j].kind != ' ' {
				end = j + 1
			} else if j-end >= 2*diffContext {
				break
			}
		}
		end = min(end+diffContext, len(ops))
		h := ops[start:end]
		ox, oy := h[0].x, h[0].y
		var nx, ny int
		for _, o := range h {
			if o.kind != '+' {
				nx++
			}
			if o.kind != '-' {
				ny++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(ox, nx), hunkRange(oy, ny))
		for _, o := range h {
			line := o.line
			out.WriteByte(o.kind)
			out.Write(line)
			if !bytes.HasSuffix(line, []byte("\n")) {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return out.Bytes()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

type diffOp struct {
	kind byte // ' ', '-', '+'
	x, y int  // index of the line in a and b at this point
	line []byte
}

func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

// diffOps aligns x and y: common prefix and suffix, then a longest common
// subsequence of the middle.
func diffOps(x, y [][]byte) []diffOp {
	p := 0
	for p < len(x) && p < len(y) && bytes.Equal(x[p], y[p]) {
		p++
	}
	s := 0
	for s < len(x)-p && s < len(y)-p && bytes.Equal(x[len(x)-1-s], y[len(y)-1-s]) {
		s++
	}
	var ops []diffOp
	for i := 0; i < p; i++ {
		ops = append(ops, diffOp{' ', i, i, x[i]})
	}
	mx, my := x[p:len(x)-s], y[p:len(y)-s]
	n, m := len(mx), len(my)
	if n*m > maxLCSCells {
		for i := range mx {
			ops = append(ops, diffOp{'-', p + i, p, mx[i]})
		}
		for j := range my {
			ops = append(ops, diffOp{'+', p + n, p + j, my[j]})
		}
	} else {
		// lcs[i][j] is the LCS length of mx[i:] and my[j:].
		lcs := make([][]int32, n+1)
		for i := range lcs {
			lcs[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if bytes.Equal(mx[i], my[j]) {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && bytes.Equal(mx[i], my[j]):
				ops = append(ops, diffOp{' ', p + i, p + j, mx[i]})
				i++
				j++
			case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
				ops = append(ops, diffOp{'-', p + i, p + j, mx[i]})
				i++
			default:
				ops = append(ops, diffOp{'+', p + i, p + j, my[j]})
				j++
			}
		}
	}
	for k := 0; k < s; k++ {
		ops = append(ops, diffOp{' ', len(x) - s + k, len(y) - s + k, x[len(x)-s+k]})
	}
	return ops
}
