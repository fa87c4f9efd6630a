package main

import (
	"fmt"

	"github.com/melcache/melcache/mount"
	"github.com/spf13/cobra"
)

func init() { addCommand(newVerifyCmd) }

// verifyLong is the help text of `melcache verify`.
const verifyLong = `Verify checks that every build-cache output (file, or directory since Go 1.24)
matches its name, the SHA-256 of its content; that every action entry is well
formed; and that every module zip and extracted tree matches its .ziphash, as
'go mod verify' checks them. With --gosum, cached modules must also match go.sum.

The other caches melange uses are checked when present (docs/caches.md):
  fetch         DIR/sha256:<hex>, DIR/sha512:<hex>: the content against the name
  npm           cacache: content files against their names (the integrity), index
                lines against their sha1 and bucket, entry sizes against content
  m2repository  every file with a .sha1 (.sha256, .sha512, .md5) beside it
  pip           wheels (wheels/, http-v2 bodies) against their RECORD
  uv, composer  nothing: their formats carry no digest melcache can check
A line per cache says how many files were checked and how many could not be.

It lists what is bad and exits 1; --repair removes it (the tool rebuilds or
re-downloads it on the next build) and exits 0. Verification catches corruption,
not a malicious snapshot: only who may push protects against that.`

// verifyExample are the examples in the help of `melcache verify`.
const verifyExample = `  melcache verify
  melcache verify --repair
  melcache verify --gosum go.sum --json`

func newVerifyCmd(g *globals) *cobra.Command {
	var fl verifyFlags
	cmd := &cobra.Command{
		Use:     "verify",
		Short:   "Check every cache entry against its hash; --repair removes the bad ones",
		Long:    verifyLong,
		Example: verifyExample,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return runVerify(cmd, g, &fl, args) },
	}
	fl.register(cmd, true)
	cmd.Flags().BoolVar(&fl.repair, "repair", false, "remove the bad entries")
	cmd.Flags().StringArrayVar(&fl.gosums, "gosum", nil, "also check cached modules against this go.sum (repeatable)")
	cmd.Flags().BoolVar(&fl.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// verifyFlags are the flags of the command runVerify runs.
type verifyFlags struct {
	cacheDirFlags
	repair bool
	gosums []string
	asJSON bool
}

// runVerify runs the command with its flags and prints the result.
func runVerify(cmd *cobra.Command, g *globals, f *verifyFlags, args []string) error {
	l, err := f.layout()
	if err != nil {
		return err
	}
	if err := f.recoverRestore(cmd.Context(), g, l); err != nil {
		return err
	}
	res, err := l.Verify(cmd.Context(), mount.VerifyOptions{Repair: f.repair, GoSums: f.gosums, Log: g.log, LockOptions: f.lockOptions(g, l)})
	if err != nil {
		return err
	}
	if f.asJSON {
		if err := writeJSON(g.stdout, res); err != nil {
			return err
		}
	} else {
		for _, p := range res.Problems {
			state := "BAD"
			if p.Repaired {
				state = "REMOVED"
			}
			fmt.Fprintf(g.stdout, "%s %s: %s\n", state, p.Path, p.Reason)
		}
		for _, u := range res.Unverified {
			g.log.Debug("nothing to verify against", "path", u)
		}
		fmt.Fprintf(g.stdout, "checked %d outputs, %d actions, %d module zips, %d module trees: %d bad",
			res.Outputs, res.Actions, res.Zips, res.Trees, len(res.Problems))
		if f.repair && len(res.Problems) > 0 {
			fmt.Fprint(g.stdout, ", removed")
		}
		if len(res.Unverified) > 0 {
			fmt.Fprintf(g.stdout, ", %d without a hash to check", len(res.Unverified))
		}
		fmt.Fprintln(g.stdout)
		for _, c := range res.Caches {
			fmt.Fprintf(g.stdout, "%s: checked %d files, %d with nothing to check against, %d volatile\n", c.Name, c.Checked, c.Unchecked, c.Volatile)
		}
	}
	if !res.OK() {
		return fmt.Errorf("%s: %d bad cache entries (melcache verify --repair removes them)", l.Dir, len(res.Problems))
	}
	return nil
}
