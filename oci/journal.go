package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"unicode"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// Names under the state directory used by a restore.
const (
	// journalName records a restore in progress so that the next command
	// completes it or rolls it back.
	journalName = "journal.json"
	// stagingName is where a restore builds the new caches: inside the
	// state directory, so on the caches' filesystem (renames and hard links
	// work) and never seen by Go.
	stagingName = "staging"
)

// Journal phases. A restore moves stage → swap → cleanup; a swap that
// fails moves swap → unswap, which puts the old caches back.
const (
	// phaseStage: the staging dir is being built; the caches are untouched.
	// Recovery rolls back (removes the staging dir).
	phaseStage = "stage"
	// phaseSwap: staging is complete and the swap passed its preflight;
	// caches are being renamed. Recovery rolls forward (finishes the
	// renames); if a rename fails it undoes the swap as phaseUnswap does.
	phaseSwap = "swap"
	// phaseUnswap: a rename of the swap failed; the caches already swapped
	// are being put back. Recovery rolls back (finishes the undo), so a
	// crash during an undo ends with the old caches.
	phaseUnswap = "unswap"
	// phaseCleanup: the new caches are in place; the old ones are deleted.
	phaseCleanup = "cleanup"
)

type journal struct {
	Phase  string        `json:"phase"`
	Caches []mount.Cache `json:"caches"`
	Digest string        `json:"digest"`
	// Error is why the swap is being undone (phaseUnswap only).
	Error string `json:"error,omitempty"`
}

// digestRE is what a journal's digest may be: it is printed in messages,
// so nothing but a digest (or none: it only names the snapshot) is
// accepted.
var digestRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(sha256:[0-9a-f]{1,64})?$`) })

// maxJournalError bounds the error a journal carries into status output.
const maxJournalError = 1024

// validate checks a journal read from the state directory, which the build
// can write: only melcache's phases, only caches of the registry
// (mount.LookupCache) that this layout has, each once, and a digest. The
// staging directory is not in the journal: it is always stagingName
// inside the state directory. Errors name the journal.
func (j *journal) validate(l mount.Layout) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("restore journal %s: %s; melcache did not write it (remove it and %s to reset)",
			journalPath(l), fmt.Sprintf(format, args...), stagingDir(l))
	}
	switch j.Phase {
	case phaseStage, phaseSwap, phaseUnswap, phaseCleanup:
	default:
		return bad("unknown phase %q", j.Phase)
	}
	if len(j.Caches) == 0 {
		return bad("no caches")
	}
	seen := map[mount.Cache]bool{}
	for _, c := range j.Caches {
		known, ok := mount.LookupCache(string(c))
		if !ok || !l.Holds(known) {
			return bad("cache %q is not one melcache manages here (%s)", c, mount.CacheNames())
		}
		if seen[known] {
			return bad("cache %q listed twice", c)
		}
		seen[known] = true
	}
	if !digestRE().MatchString(j.Digest) {
		return bad("digest %q is not a sha256 digest", j.Digest)
	}
	if len(j.Error) > maxJournalError {
		j.Error = j.Error[:maxJournalError]
	}
	j.Error = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, j.Error)
	return nil
}

func journalPath(l mount.Layout) string { return filepath.Join(l.State, journalName) }
func stagingDir(l mount.Layout) string  { return filepath.Join(l.State, stagingName) }
func stagedNew(l mount.Layout, c mount.Cache) string {
	return filepath.Join(stagingDir(l), "new", string(c))
}
func stagedOld(l mount.Layout, c mount.Cache) string {
	return filepath.Join(stagingDir(l), "old", string(c))
}

// writeJournal records j.
//
// Durability: fsutil.SyncFileAndDir. Each phase's journal must be on disk
// before the renames it describes start, or a crash could leave caches half
// swapped with no journal saying which way to recover.
func writeJournal(l mount.Layout, j journal) error {
	return mount.WriteState(l, journalName, j, fsutil.WriteOptions{Sync: fsutil.SyncFileAndDir})
}

// readJournal returns the validated journal, or nil when there is none.
func readJournal(l mount.Layout) (*journal, error) {
	j, err := mount.ReadState[journal](l, journalName)
	if err != nil {
		return nil, fmt.Errorf("restore journal: %w (remove %s and %s to reset)", err, journalPath(l), stagingDir(l))
	}
	if j == nil {
		return nil, nil
	}
	if err := j.validate(l); err != nil {
		return nil, err
	}
	return j, nil
}

// RecoveryPending reports whether an interrupted restore left a journal or
// a staging directory that RecoverInterrupted must deal with.
func RecoveryPending(l mount.Layout) bool {
	for _, p := range []string{journalPath(l), stagingDir(l)} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return false
}

// PendingRestore describes what an interrupted or failed restore left in a
// cache directory, for status and doctor.
type PendingRestore struct {
	// Phase is the journal's phase ("stage", "swap", "unswap",
	// "cleanup"), or "" when only a staging directory is left.
	Phase string `json:"phase,omitempty"`
	// Digest is the snapshot being restored.
	Digest string `json:"digest,omitempty"`
	// Error is why a swap is being undone (phase "unswap").
	Error string `json:"error,omitempty"`
	// Journal and Staging are the paths left.
	Journal string `json:"journal"`
	Staging string `json:"staging"`
	// Invalid is set when the journal cannot be used (not melcache's, a
	// link, unreadable): why, naming it.
	Invalid string `json:"invalid,omitempty"`
}

// Describe says in one line what the pending restore means for the caches.
func (p *PendingRestore) Describe() string {
	switch {
	case p.Invalid != "":
		return p.Invalid
	case p.Phase == phaseStage:
		return "a pull of " + p.Digest + " was interrupted while staging; the caches are untouched"
	case p.Phase == phaseSwap:
		return "a pull of " + p.Digest + " was interrupted while swapping the caches in; they may be half swapped"
	case p.Phase == phaseUnswap:
		return "the swap of a pull of " + p.Digest + " failed (" + p.Error + ") and is being undone; the caches may be half swapped"
	case p.Phase == phaseCleanup:
		return "a pull of " + p.Digest + " finished; the old caches in " + p.Staging + " are still to be removed"
	}
	return "a pull left its staging directory " + p.Staging
}

// Pending reports a pending restore, or nil when there is none. It only
// reads.
func Pending(l mount.Layout) *PendingRestore {
	if !RecoveryPending(l) {
		return nil
	}
	p := &PendingRestore{Journal: journalPath(l), Staging: stagingDir(l)}
	j, err := readJournal(l)
	if err != nil {
		p.Invalid = err.Error()
	} else if j != nil {
		p.Phase, p.Digest, p.Error = j.Phase, j.Digest, j.Error
	}
	return p
}

// recoverJournal completes or rolls back a restore that was interrupted
// (killed, power loss) or whose swap failed, and reports what it did (""
// when there was nothing to do). The caller must hold the exclusive lock:
// RecoverInterrupted, the one entry point every command calls, takes it.
func recoverJournal(l mount.Layout) (string, error) {
	jp, err := readJournal(l)
	if err != nil {
		return "", err
	}
	if jp == nil {
		// A staging dir without a journal is debris from a restore killed
		// before it wrote the journal, or one whose cleanup could not
		// remove it: the caches are consistent either way.
		if _, err := os.Lstat(stagingDir(l)); err == nil {
			if err := removeStaging(l); err != nil {
				return "left an abandoned staging directory: " + err.Error(), nil
			}
			return "removed an abandoned staging directory", nil
		}
		return "", nil
	}
	j := *jp
	var did string
	switch j.Phase {
	case phaseStage:
		did = "rolled back an interrupted restore of " + j.Digest
	case phaseSwap:
		if err := swapIn(l, j.Caches); err != nil {
			// Rolling forward fails as the swap did (a cache became a
			// mount point, lost write access): put the old caches back.
			if uerr := undoSwap(l, j, err); uerr != nil {
				return "", uerr
			}
			did = "rolled back an interrupted restore of " + j.Digest + ", as its swap cannot finish: " + err.Error()
			break
		}
		did = "completed an interrupted restore of " + j.Digest
	case phaseUnswap:
		if err := swapOut(l, j.Caches); err != nil {
			return "", err
		}
		did = "rolled back the failed swap of the restore of " + j.Digest + " (" + j.Error + ")"
	case phaseCleanup:
		did = "cleaned up after the restore of " + j.Digest
	}
	if err := finishRestore(l); err != nil {
		if !errors.Is(err, errStagingLeft) {
			return "", err
		}
		did += "; " + err.Error()
	}
	return did, nil
}

// errStagingLeft marks a staging directory that could not be removed: the
// caches are consistent, so it is reported, not an error of the command.
var errStagingLeft = errors.New("the caches are consistent, but the staging directory stays until it is removed by its owner or root")

// finishRestore removes the staging directory, then the journal. The
// caches are consistent (old or new) when it is called: if the staging
// directory cannot be removed (its old trees belong to a user the caller
// cannot act for) the journal is still removed, so every later command
// works, and the error wraps errStagingLeft: the staging dir is reported
// as debris until someone who may remove it runs melcache.
func finishRestore(l mount.Layout) error {
	serr := removeStaging(l)
	if err := os.Remove(journalPath(l)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := fsutil.SyncDir(l.State); err != nil {
		return err
	}
	return serr
}

// removeStaging removes the staging directory (a link planted there is
// removed, never followed). The error wraps errStagingLeft.
func removeStaging(l mount.Layout) error {
	if err := fsutil.RemoveAll(stagingDir(l)); err != nil {
		return fmt.Errorf("%w: %w", err, errStagingLeft)
	}
	return nil
}

// Fix is the fix status and doctor give for a pending restore of l.
func (p *PendingRestore) Fix(l mount.Layout) string {
	if p.Invalid != "" {
		return "remove " + p.Journal + " and " + p.Staging + " (melcache did not write that journal; check what else the build changed)"
	}
	return "run melcache pull --dir " + l.Dir + " REF (or push): it finishes or rolls back the interrupted restore before anything else " +
		"(verify, prune, clean and mark do too; a swap that cannot finish is undone); if the staging dir stays, remove " + p.Staging + " as its owner or root"
}
