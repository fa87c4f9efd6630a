package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// prepare prepares the cache dir unless it already is. mount.Prepare takes
// the lock exclusively (it may create and chown), so calling it on every
// build would make a second build on the same dir wait for the first one's
// melange to finish: builds are meant to share the lock.
func (b *run) prepare(ctx context.Context) error {
	l := b.cfg.Layout
	if prepared(l) {
		b.cacheOK = true
		return nil
	}
	// What prepare may create, parents first: taken back when the build
	// fails before melange runs (run.undoPrepare).
	cands := []string{l.Dir, l.State}
	for _, c := range l.Caches() {
		cands = append(cands, l.CacheDir(c))
	}
	cands = append(cands, filepath.Join(l.CacheDir(mount.GoCache), "README"))
	before := make(map[string]fsutil.Created, len(cands))
	for _, p := range cands {
		before[p] = fsutil.BeforeCreate(p)
	}
	res, err := l.Prepare(ctx, mount.PrepareOptions{Log: b.log, LockOptions: b.o.LockOptions})
	if res != nil {
		for _, p := range res.Created {
			if c, ok := before[p]; ok {
				b.created = append(b.created, c)
			}
		}
	}
	if err != nil {
		return b.cacheProblem("prepare "+l.Dir, err)
	}
	for _, w := range res.Warnings {
		b.warn(w)
	}
	b.cacheOK = true
	return nil
}

// undoPrepare removes what prepare created, last first, giving each
// parent back its modification time: a build that fails before melange
// runs leaves the filesystem as it was.
func (b *run) undoPrepare() {
	for i := len(b.created) - 1; i >= 0; i-- {
		if err := b.created[i].Undo(); err != nil {
			b.log.Warn("removing what prepare created", "path", b.created[i].Path, "err", err)
		}
	}
	b.created = nil
}

// prepared reports whether l is laid out and owned by the current user, so
// that Prepare would change nothing.
func prepared(l mount.Layout) bool {
	paths := []string{l.Dir, l.State, filepath.Join(l.CacheDir(mount.GoCache), "README")}
	for _, c := range l.Caches() {
		paths = append(paths, l.CacheDir(c))
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		if uid, _, ok := fsutil.OwnerOf(fi); !ok || uid != os.Getuid() {
			return false
		}
	}
	return true
}

// pull restores the snapshot ref (or a restore-key match) from s. A miss
// is the first build of a key: a notice, not even a warning.
func (b *run) pull(ctx context.Context, s oci.Store, ref string, keys []string) error {
	return b.pullCaches(ctx, s, ref, keys, nil)
}

// pullCaches is pull limited to the caches only names (nil: all).
func (b *run) pullCaches(ctx context.Context, s oci.Store, ref string, keys []string, only []mount.Cache) error {
	if ref == "" && len(keys) == 0 {
		ref = DefaultTag
	}
	o := oci.Options{RestoreKeys: keys, Log: b.log, LockOptions: b.o.LockOptions, Only: only}
	wait := b.progress(&o)
	res, err := oci.Pull(ctx, b.cfg.Layout, s, ref, o)
	wait()
	switch {
	case err == nil:
		b.report.Pull = res
		b.log.Info("restored the caches", "from", res.Store, "tag", res.Tag, "resolved", res.Resolved, "files", res.FilesWritten)
		return nil
	case errors.Is(err, oci.ErrNotFound):
		b.report.PullMiss = true
		b.o.notice(describeMiss(ref, s, keys))
		return nil
	}
	return b.cacheProblem("pull from "+s.String(), sayStoreOnce(s, err))
}

// sayStoreOnce drops the store's name from the start of err's message
// ("listing tags of STORE: ...", "STORE: ..."), for a caller that names
// the store itself: "pull from STORE: pulling from STORE" says it twice.
func sayStoreOnce(s oci.Store, err error) error {
	msg, name := err.Error(), s.String()+": "
	i := strings.Index(msg, name)
	if i < 0 || strings.Contains(msg[:i], ":") {
		return err
	}
	return &storeError{msg: msg[i+len(name):], err: err}
}

// storeError is an error whose leading name (a store's, a step's) the
// caller says itself.
type storeError struct {
	msg string
	err error
}

func (e *storeError) Error() string { return e.msg }
func (e *storeError) Unwrap() error { return e.err }

// progress sets o.Progress when the caller asked for progress and returns
// the function that waits for its display to finish.
func (b *run) progress(o *oci.Options) (wait func()) {
	if b.o.Progress == nil {
		return func() {}
	}
	p := b.o.Progress()
	o.Progress = p
	return p.Wait
}

// lockShared takes the shared lock held through the build, after finishing
// an interrupted restore (which needs it exclusively: Push would otherwise
// try to take that while this process holds the shared one).
func (b *run) lockShared(ctx context.Context) error {
	if err := b.finishInterruptedRestore(ctx); err != nil {
		b.cacheOK = false
		return b.cacheProblem("finishing an interrupted restore", err)
	}
	k, err := b.cfg.Layout.Lock(ctx, mount.Shared, b.o.LockOptions)
	if err != nil {
		b.cacheOK = false
		return b.cacheProblem("locking "+b.cfg.Layout.Dir, err)
	}
	b.lock = k
	return nil
}

// finishInterruptedRestore completes or rolls back a restore a killed pull
// left behind (oci.RecoverInterrupted takes the exclusive lock for it) and
// warns what it did.
func (b *run) finishInterruptedRestore(ctx context.Context) error {
	did, err := oci.RecoverInterrupted(ctx, b.cfg.Layout, oci.RecoverOptions{LockOptions: b.o.LockOptions})
	if did != "" {
		b.warn(did)
	}
	return err
}

// preload downloads the modules the config builds. A toolchain the build
// cannot use is bad input: the build cannot succeed.
func (b *run) preload(ctx context.Context) error {
	res, err := b.cfg.Layout.Preload(ctx, mount.PreloadOptions{Config: b.cfg.Config, SourceDir: b.cfg.SourceDir(), Lock: b.lock, Log: b.log})
	var te *mount.ToolchainError
	switch {
	case errors.As(err, &te):
		return err
	case err != nil:
		return b.cacheProblem("preload", err)
	}
	n := 0
	for _, m := range res.Modules {
		n += m.New
	}
	b.report.Preloaded = &n
	return nil
}

// mark marks the build cache so that hits and misses can be counted after
// melange.
func (b *run) mark(ctx context.Context) error {
	rec, err := b.cfg.Layout.Mark(ctx, mount.MarkOptions{Now: b.o.now, Lock: b.lock})
	if err != nil {
		return b.cacheProblem("mark", err)
	}
	b.markTime = rec.Time
	return nil
}

// pushDelta pushes what the build added. Its failure is a warning (the
// build's result stands) unless Strict. The restore keys that found the
// pull's snapshot also find the push's delta base when this dir exchanged
// none with the store (oci.Options.RestoreKeys).
func (b *run) pushDelta(ctx context.Context, s oci.Store, tag string, restoreKeys []string) error {
	o := oci.Options{Lock: b.lock, Log: b.log, LockOptions: b.o.LockOptions, RestoreKeys: restoreKeys}
	// The snapshot records the Go version when it can be known; an
	// unknown one is "" (doctor then cannot compare), not a failed push.
	o.GoVersion, _ = b.goVer.Version(ctx)
	wait := b.progress(&o)
	res, err := oci.Push(ctx, b.cfg.Layout, s, tag, o)
	wait()
	if err != nil {
		if b.cfg.Strict {
			return fmt.Errorf("push to %s (--strict): %w", s, sayStoreOnce(s, err))
		}
		b.warn(fmt.Sprintf("push to %s: %v; the build's result stands", s, sayStoreOnce(s, err)))
		return nil
	}
	b.report.Push = res
	return nil
}

func joinArgs(argv []string) string { return strings.Join(argv, " ") }
