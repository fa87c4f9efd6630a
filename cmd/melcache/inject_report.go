package main

import (
	"fmt"

	"github.com/melcache/melcache/envinject"
)

// injectTally counts inject's outcomes for the exit status.
type injectTally struct{ changed, found, skipped, bad int }

// print prints one file's outcome: its error, or the result, the diff or
// the name on stdout as the flags ask, then the values kept and the
// findings on stderr.
func (t *injectTally) print(g *globals, f *injectFlags, fr envinject.FileResult) error {
	switch {
	case fr.Err != nil:
		t.bad++
		fmt.Fprintf(g.stderr, "%s\n", fr.Err)
		return nil
	case fr.Skipped:
		t.skipped++
		if !g.quiet {
			fmt.Fprintf(g.stderr, "%s: skipped: %v\n", fr.Name, envinject.ErrNotMelange)
		}
		return nil
	}
	res, name := fr.Result, fr.Name
	if res.Changed {
		t.changed++
	}
	t.found += len(res.Findings)
	var err error
	switch {
	case f.envFile != "":
		// Checked only.
	case f.list || f.write || f.diff || f.check:
		if res.Changed && (f.list || f.check) {
			_, err = fmt.Fprintln(g.stdout, name)
		}
		if res.Changed && f.diff && err == nil {
			_, err = g.stdout.Write(envinject.Diff(name+".orig", name, fr.Src, res.Out))
		}
	default:
		_, err = g.stdout.Write(res.Out)
	}
	for _, k := range res.Kept {
		if f.envFile != "" {
			fmt.Fprintf(g.stderr, "%s:%d:%d: %s: %s overrides the env file's %s\n", name, k.Line, k.Col, k.Key, k.Value, k.Want)
		} else {
			fmt.Fprintf(g.stderr, "%s:%d:%d: kept %s: %s (melcache sets %s; --force replaces it)\n", name, k.Line, k.Col, k.Key, k.Value, k.Want)
		}
	}
	for _, fd := range res.Findings {
		fmt.Fprintf(g.stderr, "%s:%d:%d: %s\n\tfix: %s\n", name, fd.Line, fd.Col, fd.Msg, fd.Fix)
	}
	return err
}
