package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
)

// Use marks (docs/background.md, "Use marks and trimming"). Go refreshes an entry's mtime when it
// uses it, but only when the mtime is at least mtimeInterval old
// (cmd/go/internal/cache markUsed). Before a build, Mark moves every entry
// newer than that back to just past it, so that every entry the build uses
// gets a fresh mtime, and records the time T. After the build:
//
//   - a hit is an "-a" entry with an mtime after T whose content was
//     written before T (Go stamps each "-a" entry with the time it wrote it);
//   - a miss is an "-a" entry written after T: created, or rewritten in
//     place because the action's output changed.
//
// Reading the write time from the entry itself means Mark need not list the
// entries that existed at T, which would cost a file as large as the cache's
// index for every build.
//
// Entries that record an empty output are counted neither way. They are
// Go's records of an action's terminal output ("stdout", "link-stdout"
// subkeys, cmd/go/internal/work/buildid.go updateBuildID), and the linker's
// is rewritten on every link, since go build never caches the binary it
// links: counting it would report a miss for every warm build that links a
// fresh binary, as every melange build does. A real miss still counts,
// through the entry of the package archive the action produced.
//
// Hits and misses are then split by the class of the entry's output
// (ClassifyOutput): only compiled package archives are compile actions.
// Module-index entries are keyed on file mtimes and rewritten whenever a
// GOROOT is extracted anew, as apk does in every melange build, with
// nothing compiled; they and the other bookkeeping entries are counted
// apart.
const (
	// goMtimeInterval is Go's "refresh at most hourly" rule.
	goMtimeInterval = time.Hour
	// markAge is how old Mark makes recent entries: one minute past Go's
	// threshold, so that clock granularity never leaves an entry just short
	// of it.
	markAge = goMtimeInterval + time.Minute
)

// markFile records the last mark in the state directory.
const markFile = "mark.json"

// MarkRecord is the start of a build as Mark recorded it.
type MarkRecord struct {
	// Time is T, the time the build started.
	Time time.Time `json:"time"`
	// Clamped counts entries whose mtime Mark moved back.
	Clamped int `json:"clamped"`
}

// MarkOptions configure Mark.
type MarkOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Lock is a lock the caller already holds, or nil. Mark takes the lock
	// shared: it only moves mtimes, which builds tolerate.
	Lock        *Lock
	LockOptions LockOptions
}

// Mark prepares the build cache for hit and miss counting (see the use-mark
// comment above) and records the build's start time in the state directory.
func (l Layout) Mark(ctx context.Context, o MarkOptions) (*MarkRecord, error) {
	now := clock(o.Now)
	if err := l.checkExists(); err != nil {
		return nil, err
	}
	release, err := l.Acquire(ctx, o.Lock, Shared, o.LockOptions)
	if err != nil {
		return nil, err
	}
	defer release()
	t := now()
	rec := &MarkRecord{Time: t}
	if gc := l.CacheDir(GoCache); gc != "" {
		ents, err := scanGoCache(gc)
		if err != nil {
			return nil, fmt.Errorf("mark %s: %w", gc, err)
		}
		limit := t.Add(-goMtimeInterval)
		back := t.Add(-markAge)
		for _, e := range ents {
			if !e.modTime.After(limit) {
				continue
			}
			if err := os.Chtimes(e.path, back, back); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				return nil, fmt.Errorf("mark %s: %w", e.path, err)
			}
			rec.Clamped++
		}
	}
	// Durability: fsutil.SyncFile. A mark serves the build that follows it
	// in the same boot; a crash ends that build, and its rerun marks again,
	// so the mark need not survive one and the write does not wait for a
	// directory flush.
	if err := WriteState(l, markFile, rec, fsutil.WriteOptions{Sync: fsutil.SyncFile}); err != nil {
		return nil, fmt.Errorf("record mark: %w", err)
	}
	return rec, nil
}

// LastMark returns the last mark recorded, or nil when there is none.
func (l Layout) LastMark() (*MarkRecord, error) {
	return ReadState[MarkRecord](l, markFile)
}

// BuildUse is the build cache's use since a mark.
type BuildUse struct {
	// Since is the mark's time T.
	Since time.Time `json:"since"`
	// Hits counts "-a" entries used after T that existed before it, of
	// every class; Misses those written after T. Entries recording an
	// empty output are not counted either way (see the use-mark comment).
	// Most are bookkeeping: CompileActions says what was compiled.
	Hits   int `json:"hits"`
	Misses int `json:"misses"`
	// CompileActions counts entries whose output is a compiled package
	// archive: Run are packages compiled during the build, Reused
	// packages taken from the cache.
	CompileActions ActionUse `json:"compileActions"`
	// ModuleIndex, Executables and Other count the rest by the class of
	// their output (ClassifyOutput). Written module-index entries are not
	// compiles: Go rewrites them when file mtimes change.
	ModuleIndex ActionUse `json:"moduleIndex"`
	Executables ActionUse `json:"executables"`
	Other       ActionUse `json:"other"`
	// EmptyBefore says the build cache held no entry at T: the build was a
	// first build into an empty cache, where every action runs.
	EmptyBefore bool `json:"emptyBefore"`
}

// ActionUse counts the "-a" entries of one output class since a mark: Run
// were written after it (created, or rewritten because the output changed),
// Reused existed before it and were used.
type ActionUse struct {
	Run    int `json:"run"`
	Reused int `json:"reused"`
}

// Summary says what the build did in one line: compile actions first, then
// the bookkeeping entries, which are not compiles.
func (u *BuildUse) Summary() string {
	s := fmt.Sprintf("compile actions: %d run, %d reused", u.CompileActions.Run, u.CompileActions.Reused)
	return s + "; bookkeeping entries (not compiles): " + u.Bookkeeping()
}

// Bookkeeping describes the entries that are not compile actions.
func (u *BuildUse) Bookkeeping() string {
	return fmt.Sprintf("module index %d written, %d reused; executables %d written, %d reused; other %d written, %d reused",
		u.ModuleIndex.Run, u.ModuleIndex.Reused, u.Executables.Run, u.Executables.Reused, u.Other.Run, u.Other.Reused)
}

// class returns the counter for c.
func (u *BuildUse) class(c OutputClass) *ActionUse {
	switch c {
	case OutputArchive:
		return &u.CompileActions
	case OutputModIndex:
		return &u.ModuleIndex
	case OutputExecutable:
		return &u.Executables
	}
	return &u.Other
}

// Use counts the build cache's hits and misses since t, by output class
// (see the use-mark comment above). A layout without a build cache has
// none.
func (l Layout) Use(t time.Time) (*BuildUse, error) {
	u := &BuildUse{Since: t, EmptyBefore: true}
	gc := l.CacheDir(GoCache)
	if gc == "" {
		return u, nil
	}
	ents, err := scanGoCache(gc)
	if err != nil {
		return nil, fmt.Errorf("count hits in %s: %w", gc, err)
	}
	for _, e := range ents {
		if !e.modTime.After(t) {
			u.EmptyBefore = false // untouched since the mark: it was there
			continue
		}
		if !e.action {
			continue
		}
		a, err := readActionEntry(e)
		switch {
		case err != nil && errors.Is(err, os.ErrNotExist):
		case err == nil && a.size == 0:
			// Terminal-output bookkeeping: see the use-mark comment.
			if a.time.Before(t) {
				u.EmptyBefore = false
			}
		case err != nil || !a.time.Before(t):
			// A malformed entry touched after T was written after T too.
			u.Misses++
			cls := OutputOther
			if err == nil {
				cls = classifyOutputID(gc, a.out)
			}
			u.class(cls).Run++
		default:
			u.Hits++
			u.EmptyBefore = false
			u.class(classifyOutputID(gc, a.out)).Reused++
		}
	}
	return u, nil
}

// LastBuild returns the hits and misses since the last mark, or nil when no
// mark was recorded.
func (l Layout) LastBuild() (*BuildUse, error) {
	m, err := l.LastMark()
	if err != nil || m == nil {
		return nil, err
	}
	return l.Use(m.Time)
}

func clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
