package mount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/melcache/melcache/internal/units"
)

// CheckStatus is the outcome of one doctor check.
type CheckStatus string

// Check outcomes. Only CheckFail makes `melcache doctor` exit non-zero.
const (
	CheckPass CheckStatus = "pass"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
	// CheckSkip: the check could not apply (e.g. no registry reference).
	CheckSkip CheckStatus = "skip"
)

// Check is one diagnosis: what was checked, the outcome, what was found,
// and the command or setting that fixes it.
type Check struct {
	Name    string      `json:"name"`
	Status  CheckStatus `json:"status"`
	Message string      `json:"message"`
	Fix     string      `json:"fix,omitempty"`
}

// DoctorOptions configure Layout.Doctor.
type DoctorOptions struct {
	// Owner is the user who runs melange (whose guest writes the caches);
	// nil means the invoking user (CurrentOwner).
	Owner *Owner
	// Statfs reads a filesystem's free space; nil means syscall.Statfs.
	Statfs func(path string, st *syscall.Statfs_t) error
}

// doctorFreeFactor: a restore stages up to the snapshot's size beside the
// live caches before the swap (hard links cost nothing, new files do), so
// free space below the caches' size fails, below twice warns.
const doctorFreeFactor = 2

// Doctor diagnoses the cache directory alone (no network, no YAML): that it
// exists (melange silently skips a missing --cache-dir), that the caches
// belong to and are writable by the user who runs melange, free disk space
// against the caches' size, who holds the lock, and the last build's hits
// and misses. It changes nothing.
func (l Layout) Doctor(ctx context.Context, o DoctorOptions) []Check {
	owner := CurrentOwner()
	if o.Owner != nil {
		owner = *o.Owner
	}
	statfs := o.Statfs
	if statfs == nil {
		statfs = syscall.Statfs
	}
	prep := "melcache prepare --dir " + l.Dir
	if owner != CurrentOwner() {
		prep += " --owner " + owner.String()
	}
	fi, err := os.Stat(l.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []Check{{Name: "dir", Status: CheckFail,
			Message: l.Dir + " does not exist: melange build --cache-dir silently skips a missing directory, so nothing is cached",
			Fix:     prep}}
	case err != nil:
		return []Check{{Name: "dir", Status: CheckFail, Message: err.Error(), Fix: "check the path and its parents' permissions"}}
	case !fi.IsDir():
		return []Check{{Name: "dir", Status: CheckFail, Message: l.Dir + " is not a directory", Fix: "give --dir a directory; " + prep}}
	}
	checks := []Check{l.doctorDir(owner, prep)}
	checks = append(checks, l.doctorOwner(ctx, owner, prep))
	st, err := l.Status(ctx, StatusOptions{})
	if err != nil {
		checks = append(checks, Check{Name: "disk", Status: CheckWarn, Message: err.Error()})
		return checks
	}
	checks = append(checks, l.doctorDisk(st, statfs), doctorLock(st), doctorLastBuild(st))
	return checks
}

func (l Layout) doctorDir(owner Owner, prep string) Check {
	var missing []string
	for _, c := range l.Caches() {
		if err := l.CheckCacheRoot(c); err != nil {
			return Check{Name: "dir", Status: CheckFail, Message: err.Error(),
				Fix: "replace the link with a directory holding its files (mv), or move the whole cache dir to the other disk"}
		}
		if _, err := os.Stat(l.CacheDir(c)); err != nil {
			missing = append(missing, l.CacheDir(c))
		}
	}
	if len(missing) > 0 {
		return Check{Name: "dir", Status: CheckWarn,
			Message: fmt.Sprintf("%s exists but %s missing: the build creates it as the guest user, or cannot", l.Dir, strings.Join(missing, " and ")+plural(len(missing), " is", " are")),
			Fix:     prep}
	}
	return Check{Name: "dir", Status: CheckPass, Message: l.Dir + " exists with " + joinCaches(l.Caches())}
}

// doctorOwner walks the caches: every entry must belong to owner (Go
// refreshes use marks with Chtimes, which needs ownership, and writes new
// entries into the directories), and the directories Go writes into must be
// writable by it. Extracted module trees are read-only by Go's design and
// only their owner is checked.
func (l Layout) doctorOwner(ctx context.Context, owner Owner, prep string) Check {
	var wrong, unwritable int
	var firstWrong, firstUnwritable string
	var wrongOwner string
	for _, c := range l.Caches() {
		root := l.CacheDir(c)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			cur, ok := ownerOf(fi)
			if !ok {
				return nil
			}
			if cur.UID != owner.UID {
				wrong++
				if firstWrong == "" {
					firstWrong, wrongOwner = p, cur.String()
				}
			}
			if d.IsDir() && owner.UID != 0 && goWritesInto(l, c, root, p) && fi.Mode().Perm()&0o200 == 0 {
				unwritable++
				if firstUnwritable == "" {
					firstUnwritable = p
				}
			}
			return nil
		})
	}
	switch {
	case wrong > 0:
		return Check{Name: "owner", Status: CheckFail,
			Message: fmt.Sprintf("%d entries are not owned by %s, the user who runs melange (e.g. %s is %s): the build fails with permission denied or silently loses Go's use marks",
				wrong, owner, firstWrong, wrongOwner),
			Fix: prep + " (as root; --owner is the user melange runs as)"}
	case unwritable > 0:
		return Check{Name: "owner", Status: CheckFail,
			Message: fmt.Sprintf("%d directories Go writes into are not writable by their owner (e.g. %s)", unwritable, firstUnwritable),
			Fix:     "chmod -R u+w " + firstUnwritable + ", or " + prep}
	}
	return Check{Name: "owner", Status: CheckPass, Message: "caches owned by " + owner.String() + " and writable"}
}

// goWritesInto says whether Go creates files in directory p: every build
// cache directory, and the module cache outside extracted module trees
// (which are 0555 on purpose).
func goWritesInto(l Layout, c Cache, root, p string) bool {
	if c == GoCache || p == root {
		return true
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	return rel == "cache" || strings.HasPrefix(rel, "cache"+string(filepath.Separator)) || !strings.Contains(rel, "@")
}

func (l Layout) doctorDisk(st *Status, statfs func(string, *syscall.Statfs_t) error) Check {
	var size int64
	for _, c := range st.Caches {
		size += c.Bytes
	}
	var fsst syscall.Statfs_t
	if err := statfs(l.Dir, &fsst); err != nil {
		return Check{Name: "disk", Status: CheckWarn, Message: fmt.Sprintf("statfs %s: %v", l.Dir, err)}
	}
	if fsst.Flags&stRdonly != 0 {
		return Check{Name: "disk", Status: CheckFail, Message: l.Dir + " is on a read-only filesystem", Fix: "put --cache-dir on a writable filesystem"}
	}
	free := int64(fsst.Bavail) * int64(fsst.Bsize)
	msg := fmt.Sprintf("%s free for caches of %s", units.FormatSize(free), units.FormatSize(size))
	fix := "free space on that filesystem, or trim the build cache: melcache prune --dir " + l.Dir + " --max-size SIZE"
	switch {
	case free < size:
		return Check{Name: "disk", Status: CheckFail, Message: msg + ": a pull stages up to the caches' size again and builds add more", Fix: fix}
	case free < doctorFreeFactor*size:
		return Check{Name: "disk", Status: CheckWarn, Message: msg + ": less than twice the caches' size", Fix: fix}
	}
	return Check{Name: "disk", Status: CheckPass, Message: msg}
}

// stRdonly is ST_RDONLY in statfs(2)'s f_flags.
const stRdonly = 0x1

func doctorLock(st *Status) Check {
	if len(st.LockedBy) == 0 {
		return Check{Name: "lock", Status: CheckPass, Message: "no process holds the cache lock"}
	}
	var who []string
	for _, h := range st.LockedBy {
		who = append(who, h.String())
	}
	return Check{Name: "lock", Status: CheckWarn,
		Message: "the cache lock is held by " + strings.Join(who, ", ") + ": pull, prune and clean wait for it",
		Fix:     "let it finish, or stop that process if it hangs (ps -p PID)"}
}

// doctorMissRatio: a build into a non-empty cache that compiled this many
// times more packages than it reused got little from the cache.
const doctorMissRatio = 1

func doctorLastBuild(st *Status) Check {
	u := st.LastBuild
	if u == nil {
		return Check{Name: "last-build", Status: CheckSkip,
			Message: "no build recorded: run melcache mark before melange build (melcache build does) to count compile actions"}
	}
	msg := fmt.Sprintf("last build (since %s): %s", u.Since.UTC().Format("2006-01-02T15:04:05Z"), u.Summary())
	c := u.CompileActions
	switch {
	case u.EmptyBefore && c.Run > 0:
		return Check{Name: "last-build", Status: CheckPass,
			Message: msg + ": a first build into an empty cache compiles everything; the next one reuses it"}
	case c.Run > doctorMissRatio*c.Reused && c.Run > 0:
		return Check{Name: "last-build", Status: CheckWarn,
			Message: msg + ": most packages were compiled again, so the cache was mostly not reused",
			Fix:     "the cache keys changed: check that -trimpath is used every time (melange's go/build does; toggling it rebuilds everything), the Go version (go version) matches the one that filled the cache, and GOFLAGS, CGO_ENABLED, tags and GOARCH are the same"}
	}
	return Check{Name: "last-build", Status: CheckPass, Message: msg}
}

func joinCaches(cs []Cache) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, " and ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
