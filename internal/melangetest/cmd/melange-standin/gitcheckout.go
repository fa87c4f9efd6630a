package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
)

// gitCheckoutSpec holds the git-checkout inputs, substituted.
type gitCheckoutSpec struct {
	Repository, Destination, Depth, Branch, Tag, ExpectedCommit string
}

// gitCheckout follows pkg/build/pipelines/git-checkout.yaml: a shallow clone
// (depth 1 unless branch and expected-commit ask for full history) of the
// branch or tag into a temp dir, its files copied to the destination, then
// for a tag an explicit fetch and checkout of refs/tags/TAG and a check that
// HEAD (or the annotated tag object) is the expected commit; for a branch or
// HEAD a check of the tip, resetting to an older expected commit only with
// full history.
//
// Deviation: melange runs this script in the guest; the stand-in runs git on
// the host, because its guest has no network and tests clone local
// repositories outside the guest's view. The files land in the same place.
func gitCheckout(ctx context.Context, log io.Writer, ws, workdir string, s gitCheckoutSpec) error {
	msg := func(format string, args ...any) { logf(log, "INFO", "[git checkout] "+format, args...) }
	if s.Repository == "" {
		return fmt.Errorf("repository not provided")
	}
	if s.Branch != "" && s.Tag != "" {
		return fmt.Errorf("both branch (%s) and tag (%s) are specified", s.Branch, s.Tag)
	}
	if s.ExpectedCommit == "" {
		msg("Warning: no expected-commit")
	}
	depth := s.Depth
	if depth == "unset" || depth == "" {
		depth = "1"
		if s.Branch != "" && s.ExpectedCommit != "" {
			depth = "-1"
		}
	}
	dest := s.Destination
	if !path.IsAbs(dest) {
		dest = path.Join(workdir, dest)
	}
	hostDest, err := hostPath(ws, dest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(hostDest, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "git-checkout-*")
	if err != nil {
		return err
	}
	defer removeAll(tmp)

	args := []string{"clone", "--quiet", "--origin=origin", "--config=advice.detachedHead=false"}
	if s.Branch != "" {
		args = append(args, "--branch="+s.Branch)
	}
	if s.Tag != "" {
		args = append(args, "--branch="+s.Tag)
	}
	depthFlag := ""
	if depth != "-1" {
		depthFlag = "--depth=" + depth
		args = append(args, depthFlag)
	}
	repo := s.Repository
	// A local clone ignores --depth; file:// keeps it shallow as for a
	// remote (git warns "use file:// instead").
	if path.IsAbs(repo) {
		repo = "file://" + repo
	}
	args = append(args, repo, tmp)
	msg("execute: git %s", strings.Join(args, " "))
	if _, err := git(ctx, "", args...); err != nil {
		return fmt.Errorf("git clone failed: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", tmp+"/.", hostDest+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("copying the checkout to %s: %v: %s", dest, err, out)
	}

	if s.Tag == "" {
		found, err := git(ctx, hostDest, "rev-parse", "--verify", "HEAD")
		if err != nil {
			return err
		}
		if s.ExpectedCommit != "" && s.ExpectedCommit != found {
			if depth != "-1" {
				return fmt.Errorf("expected commit %s on %s, got %s, set depth to -1 to attempt a reset", s.ExpectedCommit, orHEAD(s.Branch), found)
			}
			if _, err := git(ctx, hostDest, "merge-base", "--is-ancestor", s.ExpectedCommit, found); err != nil {
				return fmt.Errorf("expected commit %s is not reachable from %s (tip %s)", s.ExpectedCommit, orHEAD(s.Branch), found)
			}
			msg("expected commit %s on %s, got %s, performing reset", s.ExpectedCommit, orHEAD(s.Branch), found)
			if _, err := git(ctx, hostDest, "reset", "--hard", s.ExpectedCommit); err != nil {
				return err
			}
		}
		msg("tip of %s is commit %s", orHEAD(s.Branch), found)
		return nil
	}

	fetch := []string{"fetch", "--quiet", "origin"}
	if depthFlag != "" {
		fetch = append(fetch, depthFlag)
	}
	fetch = append(fetch, "--no-tags", "+refs/tags/"+s.Tag+":refs/origin/tags/"+s.Tag)
	if _, err := git(ctx, hostDest, fetch...); err != nil {
		return err
	}
	if _, err := git(ctx, hostDest, "checkout", "--quiet", "origin/tags/"+s.Tag); err != nil {
		return err
	}
	found, err := git(ctx, hostDest, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return err
	}
	if s.ExpectedCommit == "" || s.ExpectedCommit == found {
		msg("tag %s is %s", s.Tag, found)
		return nil
	}
	tagObj, err := git(ctx, hostDest, "rev-parse", "--verify", "--end-of-options", "refs/origin/tags/"+s.Tag)
	if err != nil || tagObj != s.ExpectedCommit {
		return fmt.Errorf("Expected commit %s for %s, found %s", s.ExpectedCommit, s.Tag, found)
	}
	msg("Warning: The provided expected-commit (%s) was the hash of the annotated tag object for %s. Update to set expected-commit to %s", s.ExpectedCommit, s.Tag, found)
	return nil
}

func orHEAD(branch string) string {
	if branch == "" {
		return "HEAD"
	}
	return branch
}

// git runs git in dir and returns its trimmed stdout.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}
