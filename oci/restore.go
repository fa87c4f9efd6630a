package oci

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// useMarkAge is how far in the past restored files' mtimes are set: more
// than Go's one-hour refresh threshold, so the next build that uses an entry
// marks it (hits become visible), and far inside Go's 5-day trim window, so
// no restored entry is trimmed (docs/background.md, "Use marks and trimming": old or zero
// mtimes get the restored cache wiped by the first go command).
const useMarkAge = 2 * time.Hour

// readBufSize batches reads of a layer blob: the zstd decoder asks for
// small pieces.
const readBufSize = 1 << 20

// layerRetries is how often a data layer download cut mid-stream is
// retried (ggcr does not retry a body that fails after the first byte).
const layerRetries = 3

// layerRetryBackoff is the first retry delay, doubled each time.
var layerRetryBackoff = time.Second

// entryKey names an entry by cache and cache-relative path. A struct, not
// a joined string, so looking an entry up allocates nothing (a re-pull of a
// million files makes millions of lookups).
type entryKey struct {
	c mount.Cache
	p string
}

func (e *Entry) id() entryKey { return entryKey{e.Cache, e.Path} }

// localEntry is a local file or directory; mode is read for directories
// only (a merge keeps them with their mode), files are stat'ed when they
// are checked for reuse.
type localEntry struct {
	dir  bool
	mode fs.FileMode
}

// How a snapshot file is staged.
const (
	fetchIt      uint8 = iota // downloaded
	linkIt                    // present locally with the same content and mode: hard-linked
	copyWithMode              // same content, another mode: copied with the snapshot's mode
)

// stagedDir is a staged directory and the mode seal gives it; rel "" is
// the cache root.
type stagedDir struct {
	c    mount.Cache
	rel  string
	mode fs.FileMode
}

// restore builds the new caches from snap in a staging directory and swaps
// them in (docs/format.md, "Restore"). The caller holds the exclusive lock
// and has run RecoverInterrupted. The phases are restorer's methods, in the
// order below; the crash points (crash.go) mark the steps between them.
func restore(ctx context.Context, l mount.Layout, s Store, snap *Snapshot, o Options, res *Result) error {
	r := &restorer{ctx: ctx, l: l, s: s, snap: snap, o: o, res: res, log: o.log()}
	if err := r.begin(); err != nil {
		return err
	}
	committed := false
	defer func() {
		r.closeRoots()
		if !committed { // roll back: the caches were never touched
			_ = fsutil.RemoveAll(r.stage)
			_ = os.Remove(journalPath(l))
		}
	}()
	for _, phase := range []func() error{r.plan, r.stageLocal, r.download, r.verifyStaged, r.seal} {
		if err := phase(); err != nil {
			return err
		}
	}
	r.closeRoots()
	// Preflight before the journal says "swap": a cache that cannot be
	// renamed refuses the pull with the caches untouched.
	if err := preflightSwap(l, r.caches); err != nil {
		return err
	}
	if err := r.journal(phaseSwap); err != nil {
		return err
	}
	committed = true // from here on, recovery rolls forward
	if err := r.swap(); err != nil {
		// A rename failed after the preflight: put the old caches back
		// (phase "unswap"), then clean up as a rollback does.
		j := journal{Phase: phaseSwap, Caches: r.caches, Digest: r.snap.Digest.String()}
		if uerr := undoSwap(l, j, err); uerr != nil {
			return uerr
		}
		if ferr := finishRestore(l); ferr != nil {
			r.log.Warn("cannot remove the staging directory", "dir", r.stage, "err", ferr)
		}
		return fmt.Errorf("%w; the old caches were put back", err)
	}
	return r.cleanup()
}

// restorer restores one snapshot into a layout. Its methods are the phases
// of restore; each leaves what the next needs in its fields.
type restorer struct {
	ctx  context.Context
	l    mount.Layout
	s    Store
	snap *Snapshot
	o    Options
	res  *Result
	log  *slog.Logger

	// Set by begin.
	caches []mount.Cache // the caches this pull replaces
	stage  string        // the staging directory
	t0     time.Time     // start of the work, for the debug log's elapsed times
	now    time.Time     // the restore's clock reading: trim.txt and use marks
	// owners gives, per cache, who gets what a root pull creates: the
	// owner of the live cache root (prepare gives it to the build user),
	// or DIR's owner for a cache that does not exist yet.
	owners map[mount.Cache]*fileOwner

	// Set by stageLocal: the staged cache roots, open, so that staged
	// entries are named relative to them (stagefs.go).
	roots map[mount.Cache]*os.File

	// Set by plan.
	local   map[entryKey]localEntry // local files and directories
	snapIdx map[entryKey]int        // the snapshot's entries (merge only)
	reuse   []uint8                 // per snapshot entry: fetchIt, linkIt or copyWithMode
	reused  int                     // entries not fetchIt

	// Set while staging.
	dirs []stagedDir // staged directories and their final modes
}

func (r *restorer) journal(phase string) error {
	return writeJournal(r.l, journal{Phase: phase, Caches: r.caches, Digest: r.snap.Digest.String()})
}

// begin makes an empty staging directory on the caches' filesystem and
// writes the "stage" journal: from here a crash rolls back.
func (r *restorer) begin() error {
	if r.l.Mode == mount.Recipe {
		return fmt.Errorf("pull into %s: recipe-mode directories (DIR is GOMODCACHE) cannot be swapped atomically; use a split layout (melcache prepare)", r.l.Dir)
	}
	r.caches = restoredCaches(r.l, r.snap, r.o)
	for _, c := range r.caches {
		if err := r.l.CheckCacheRoot(c); err != nil {
			return fmt.Errorf("pull: %w", err)
		}
	}
	r.stage = stagingDir(r.l)
	// Removes a link planted at staging, never its target; the new
	// staging dirs are made inside the verified state dir, not by path.
	if err := fsutil.RemoveAll(r.stage); err != nil {
		return err
	}
	state, err := r.l.OpenState(true)
	if err != nil {
		return err
	}
	for _, d := range []string{stagingName, filepath.Join(stagingName, "new")} {
		if err = r.l.StateSubdir(state, d, true); err != nil {
			break
		}
	}
	state.Close()
	if err != nil {
		return err
	}
	if err := sameDevice(r.l.Dir, r.stage); err != nil {
		_ = fsutil.RemoveAll(r.stage)
		return err
	}
	if err := r.journal(phaseStage); err != nil {
		return err
	}
	crashPoint("pull-journal")
	r.t0 = time.Now()
	umask() // read once now, before any goroutine creates files
	dirOwn := ownerOf(r.l.Dir)
	r.owners = map[mount.Cache]*fileOwner{}
	for _, c := range r.caches {
		r.owners[c] = dirOwn
		if o := ownerOf(r.l.CacheDir(c)); o != nil {
			r.owners[c] = o
		}
	}
	r.now = r.o.now()
	return nil
}

// plan lists the local caches and finds the snapshot files already present
// with the same content: those are reused (hard-linked, or copied when only
// the mode differs), the others downloaded.
func (r *restorer) plan() error {
	r.local = map[entryKey]localEntry{}
	for _, c := range r.caches {
		if err := r.listLocal(c); err != nil {
			return err
		}
	}
	entries := r.snap.Index.Entries
	if !r.o.Replace {
		r.snapIdx = make(map[entryKey]int, len(entries))
	}
	r.reuse = make([]uint8, len(entries))
	var candidates []int
	for i := range entries {
		e := &entries[i]
		if r.snapIdx != nil {
			r.snapIdx[e.id()] = i
		}
		if le, ok := r.local[e.id()]; ok && e.Type == TypeFile && !le.dir {
			candidates = append(candidates, i)
		}
	}
	if err := r.checkReuse(candidates); err != nil {
		return err
	}
	for _, st := range r.reuse {
		if st != fetchIt {
			r.reused++
		}
	}
	return nil
}

// checkReuse sets r.reuse for the candidate entries (snapshot files present
// locally): each local file is opened once, fstat'ed and hashed; an empty
// one is only lstat'ed. Workers take candidates in turn, so no goroutine or
// closure is made per file.
func (r *restorer) checkReuse(candidates []int) error {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(r.ctx)
	for range max(1, min(r.o.jobs(), len(candidates))) {
		g.Go(func() error {
			buf := hashBufPool.Get().(*[]byte)
			defer hashBufPool.Put(buf)
			for {
				k := int(next.Add(1) - 1)
				if k >= len(candidates) || gctx.Err() != nil {
					return gctx.Err()
				}
				i := candidates[k]
				st, err := r.reusable(&r.snap.Index.Entries[i], *buf)
				if err != nil {
					return err
				}
				r.reuse[i] = st
			}
		})
	}
	return g.Wait()
}

// emptySHA256 is the SHA-256 of no bytes: an empty local file matches an
// entry with it without being opened.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// reusable says how the local copy of file entry e can be staged.
func (r *restorer) reusable(e *Entry, buf []byte) (uint8, error) {
	live := r.livePath(e.Cache, e.Path)
	var fi fs.FileInfo
	if e.Size == 0 {
		var err error
		if fi, err = os.Lstat(live); err != nil {
			return fetchIt, ignoreGone(err)
		}
		if !fi.Mode().IsRegular() || fi.Size() != 0 || e.SHA256 != emptySHA256 {
			return fetchIt, nil
		}
	} else {
		f, err := os.OpenFile(live, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			if errors.Is(err, syscall.ELOOP) {
				return fetchIt, nil // replaced by a link since the walk
			}
			return fetchIt, ignoreGone(err)
		}
		defer f.Close()
		if fi, err = f.Stat(); err != nil {
			return fetchIt, err
		}
		if !fi.Mode().IsRegular() || fi.Size() != e.Size {
			return fetchIt, nil
		}
		same, exact, err := sameLocal(f, e, buf)
		if err != nil {
			return fetchIt, fmt.Errorf("read %s: %w", fsutil.ShortPath(live), err)
		}
		if !same {
			return fetchIt, nil
		}
		if !exact && (fi.Mode().Perm() != fs.FileMode(e.Mode) || r.wrongOwner(e.Cache, fi)) {
			// An action entry that differs only in its time field is
			// kept as it is; a copy with another mode or owner would be
			// checked against the index's digest, which it does not
			// have: fetch the index's (rare: Go writes them 0644).
			return fetchIt, nil
		}
	}
	if fi.Mode().Perm() != fs.FileMode(e.Mode) || r.wrongOwner(e.Cache, fi) {
		// A link would keep the local mode and owner (it is the same
		// inode), and changing them would change the live cache before
		// the swap.
		return copyWithMode, nil
	}
	return linkIt, nil
}

// sameLocal reports whether the open local file f holds snapshot entry
// e's content (exact) or, for a GOCACHE action entry, differs from it
// only in the time field (sameFile's rule: a merge pull keeps such a
// local entry, neither rewritten nor downloaded).
func sameLocal(f *os.File, e *Entry, buf []byte) (same, exact bool, err error) {
	if volatileAction(e.Cache, e.Path, e) {
		b, err := io.ReadAll(io.LimitReader(f, mount.ActionEntryLen+1))
		if err != nil {
			return false, false, err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) == e.SHA256 {
			return true, true, nil
		}
		return sameAction(b, e), false, nil
	}
	h := sha256.New()
	// Hide f's WriteTo: io.CopyBuffer would use it and allocate a copy
	// buffer per file instead of using buf.
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return false, false, err
	}
	var sum [sha256.Size]byte
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], h.Sum(sum[:0]))
	return string(hx[:]) == e.SHA256, string(hx[:]) == e.SHA256, nil
}

// wrongOwner reports, for a root pull, whether a local file does not
// belong to its cache's owner (an earlier root pull gave it to root): it is
// copied, so that chown gives the copy to the owner.
func (r *restorer) wrongOwner(c mount.Cache, fi fs.FileInfo) bool {
	fo := r.owners[c]
	if fo == nil || os.Geteuid() != 0 {
		return false
	}
	uid, gid, ok := fsutil.OwnerOf(fi)
	return ok && (uid != fo.uid || gid != fo.gid)
}

func ignoreGone(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// listLocal adds cache c's files and directories to r.local. Files are not
// stat'ed here: only those the snapshot also holds need their size, and
// checkReuse gets it from the descriptor it hashes through.
func (r *restorer) listLocal(c mount.Cache) error {
	if c == mount.FetchCache {
		return r.listLocalFetch()
	}
	root := r.l.CacheDir(c)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		switch {
		case d.Type().IsRegular():
			r.local[entryKey{c, rel}] = localEntry{}
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			r.local[entryKey{c, rel}] = localEntry{dir: true, mode: fi.Mode().Perm()}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan %s: %w", fsutil.ShortPath(root), err)
	}
	return nil
}

// stageLocal lays out the staging tree from what is here: the cache roots,
// the snapshot's directories, hard links to reused files and, in merge
// mode, the local entries the snapshot does not shadow. Directories are
// writable until seal gives them their final modes.
func (r *restorer) stageLocal() error {
	for _, c := range r.caches {
		p := stagedNew(r.l, c)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if c == mount.FetchCache {
			continue // no root: DIR keeps its mode and owner
		}
		// The cache roots keep their mode (prepare may have made them
		// group-writable for the build user); new ones get 0755.
		mode := fs.FileMode(0o755)
		if fi, err := os.Lstat(r.l.CacheDir(c)); err == nil {
			mode = fi.Mode().Perm()
		}
		r.dirs = append(r.dirs, stagedDir{c, "", mode})
	}
	if err := r.openRoots(); err != nil {
		return err
	}
	linked, copied := 0, 0
	for i := range r.snap.Index.Entries {
		e := &r.snap.Index.Entries[i]
		switch {
		case e.Type == TypeDir:
			if err := r.mkdir(e.Cache, e.Path); err != nil {
				return err
			}
			r.dirs = append(r.dirs, stagedDir{e.Cache, e.Path, fs.FileMode(e.Mode)})
		case r.reuse[i] == linkIt && e.Cache == mount.FetchCache:
			// Already the snapshot's, in DIR: it stays (fetchswap.go).
		case r.reuse[i] == linkIt:
			if err := r.link(e.Cache, e.Path); err != nil {
				return err
			}
			linked++
		case r.reuse[i] == copyWithMode:
			if err := r.copyFile(e); err != nil {
				return err
			}
			copied++
		}
	}
	if !r.o.Replace {
		n, err := r.stageKept()
		if err != nil {
			return err
		}
		linked += n
	} else if err := r.stageFetchDrops(); err != nil {
		return err
	}
	r.log.Debug("staged local files", "reused", r.reused, "linked", linked, "copied", copied, "elapsed", time.Since(r.t0))
	return nil
}

// stageKept stages what a merge keeps: the local directories and files the
// snapshot does not shadow, parents first. It returns how many files it
// linked.
func (r *restorer) stageKept() (int, error) {
	var keep []entryKey
	for k := range r.local {
		if k.c == mount.GoCache && (k.p == goTrimFile || strings.HasPrefix(k.p, goTrimFile+"/")) {
			continue // rewritten by seal (a directory there is junk Go cannot use)
		}
		if k.c == mount.FetchCache {
			continue // kept where it is: the fetch swap acts on staged names only
		}
		if !r.shadowed(k) {
			keep = append(keep, k)
		}
	}
	sort.Slice(keep, func(i, j int) bool { // parents before children
		if keep[i].c != keep[j].c {
			return keep[i].c < keep[j].c
		}
		return keep[i].p < keep[j].p
	})
	n := 0
	for _, k := range keep {
		le := r.local[k]
		if le.dir {
			if err := r.mkdir(k.c, k.p); err != nil {
				return n, err
			}
			r.dirs = append(r.dirs, stagedDir{k.c, k.p, le.mode})
			continue
		}
		if err := r.link(k.c, k.p); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// shadowed reports whether a merge drops the local entry k: the snapshot
// has the same path, or a file where k needs a directory.
func (r *restorer) shadowed(k entryKey) bool {
	if _, ok := r.snapIdx[k]; ok {
		return true
	}
	for d := path.Dir(k.p); d != "."; d = path.Dir(d) {
		if i, ok := r.snapIdx[entryKey{k.c, d}]; ok && r.snap.Index.Entries[i].Type == TypeFile {
			return true
		}
	}
	return false
}

// download fetches the layers holding missing files, in parallel and
// streaming, each file checked against the index as it is written, and
// checks the module zips and trees.
func (r *restorer) download() error {
	want, order, modLayers := r.wantedLayers()
	r.res.BlobsSkipped = len(r.snap.Config.Layers) - len(want)
	var written, dataBytes atomic.Int64
	// Module layers go first, and the module checks (zips re-inflated
	// against .ziphash: CPU-heavy) start as soon as the last one is in,
	// overlapping with the GOCACHE layers' extraction.
	var modLeft atomic.Int64
	modLeft.Store(int64(modLayers))
	modReuse := map[string]bool{} // verifyModules's view of r.reuse
	for i := range r.snap.Index.Entries {
		if e := &r.snap.Index.Entries[i]; e.Cache == mount.GoModCache && r.reuse[i] != fetchIt {
			modReuse[e.key()] = true
		}
	}
	verify := func() error {
		err := verifyModules(r.ctx, r.l, r.snap, modReuse, r.newPath, r.o.jobs())
		r.log.Debug("verified module zips and trees", "elapsed", time.Since(r.t0))
		return err
	}
	g, gctx := errgroup.WithContext(r.ctx)
	g.SetLimit(max(1, r.o.jobs()))
	if modLayers == 0 {
		g.Go(verify) // only reused module files: trees still checked
	}
	dst := func(e *Entry) string { return r.newPath(e.Cache, e.Path) }
	for _, li := range order {
		desc, info := r.snap.DataLayer(li), r.snap.Config.Layers[li]
		g.Go(func() error {
			n, err := fetchLayer(gctx, r.s, desc, info, want[li], dst, &written, r.o)
			dataBytes.Add(n)
			if err != nil {
				return err
			}
			if info.Cache == mount.GoModCache && modLeft.Add(-1) == 0 {
				return verify()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.res.Layers = len(want)
	r.res.DataBytes = dataBytes.Load()
	r.res.FilesWritten = int(written.Load())
	r.log.Debug("downloaded layers", "layers", len(want), "files", written.Load(), "elapsed", time.Since(r.t0))
	return nil
}

// wantedLayers maps each layer holding files to download to those files
// (by tar member name), and orders the layers module caches first. It also
// counts the module-cache layers.
func (r *restorer) wantedLayers() (want map[int]map[string]*Entry, order []int, modLayers int) {
	want = map[int]map[string]*Entry{}
	for i := range r.snap.Index.Entries {
		e := &r.snap.Index.Entries[i]
		if e.Type != TypeFile || r.reuse[i] != fetchIt {
			continue
		}
		if want[e.Layer] == nil {
			want[e.Layer] = map[string]*Entry{}
		}
		want[e.Layer][e.TarName()] = e
	}
	for _, first := range []bool{true, false} {
		for li := range r.snap.Config.Layers {
			if want[li] != nil && (r.snap.Config.Layers[li].Cache == mount.GoModCache) == first {
				order = append(order, li)
				if first {
					modLayers++
				}
			}
		}
	}
	return want, order, modLayers
}

// seal finishes the staging tree: use marks, owners and final directory
// modes, then flushes it to disk. After it a crash still rolls back, but
// the tree is ready to swap in.
func (r *restorer) seal() error {
	if err := r.markUsed(); err != nil {
		return err
	}
	if err := r.chown(); err != nil {
		return err
	}
	// Final directory modes, deepest first (0555 module trees).
	sort.SliceStable(r.dirs, func(i, j int) bool { return len(r.dirs[i].rel) > len(r.dirs[j].rel) })
	for _, d := range r.dirs {
		if err := r.chmod(d.c, d.rel, d.mode); err != nil {
			return err
		}
	}
	if err := syncFS(r.stage); err != nil {
		return err
	}
	r.log.Debug("staging synced to disk", "elapsed", time.Since(r.t0))
	crashPoint("pull-staged")
	return nil
}

// markUsed gives every file of the Go caches the mtime now-2h (useMarkAge)
// and writes trim.txt = now. The other caches have no use marks: their
// mtime is when a file was written, which `prune --max-age` reads
// (docs/caches.md), so a file a pull reuses keeps its mtime and one it
// writes keeps the time of writing.
func (r *restorer) markUsed() error {
	markTime := r.now.Add(-useMarkAge)
	for i := range r.snap.Index.Entries {
		e := &r.snap.Index.Entries[i]
		if e.Type != TypeFile || e.Cache == mount.FetchCache && r.reuse[i] == linkIt {
			continue // a fetch file already in DIR is not staged
		}
		if p, ok := mount.ProfileOf(e.Cache); ok && !p.GoCache {
			continue
		}
		if err := r.chtimes(e.Cache, e.Path, markTime); err != nil {
			return err
		}
	}
	for _, c := range r.caches {
		if c == mount.GoCache {
			// Go's format (cmd/go/internal/cache): decimal Unix seconds.
			if err := r.writeNew(c, "trim.txt", []byte(strconv.FormatInt(r.now.Unix(), 10)+"\n"), 0o644); err != nil {
				return err
			}
		}
	}
	r.log.Debug("set use marks", "elapsed", time.Since(r.t0))
	return nil
}

// chown: files we create belong to us; a root pull gives what it created
// (downloaded and copied files, trim.txt, new directories) to the owner of
// their cache root (r.owners), and every staged directory that replaces a
// local one to that directory's owner. Linked files keep their owner.
func (r *restorer) chown() error {
	if os.Geteuid() != 0 {
		return nil
	}
	mine := func(fo *fileOwner) bool { return fo == nil || fo.uid == 0 && fo.gid == os.Getegid() }
	for i := range r.snap.Index.Entries {
		e := &r.snap.Index.Entries[i]
		if e.Type != TypeFile || r.reuse[i] == linkIt {
			continue
		}
		if fo := r.owners[e.Cache]; !mine(fo) {
			if err := r.lchown(e.Cache, e.Path, fo); err != nil {
				return err
			}
		}
	}
	for _, c := range r.caches {
		if fo := r.owners[c]; c == mount.GoCache && !mine(fo) {
			if err := r.lchown(c, "trim.txt", fo); err != nil {
				return err
			}
		}
	}
	for _, d := range r.dirs {
		fo := r.owners[d.c]
		if lo := ownerOf(r.livePath(d.c, d.rel)); lo != nil {
			fo = lo
		}
		if !mine(fo) {
			if err := r.lchown(d.c, d.rel, fo); err != nil {
				return err
			}
		}
	}
	return nil
}

// swap renames the staged caches into place. The caller has written the
// "swap" journal: a crash from here rolls forward.
func (r *restorer) swap() error {
	if err := swapIn(r.l, r.caches); err != nil {
		return err
	}
	crashPoint("pull-swapped")
	return nil
}

// cleanup removes the old caches and the journal.
func (r *restorer) cleanup() error {
	if err := r.journal(phaseCleanup); err != nil {
		return err
	}
	crashPoint("pull-cleanup")
	err := finishRestore(r.l)
	if errors.Is(err, errStagingLeft) {
		r.log.Warn("cannot remove the old caches", "dir", r.stage, "err", err)
		return nil
	}
	return err
}

// fetchLayer streams one data layer: the compressed bytes are digest-checked
// while they are decompressed and the wanted files written. It downloads
// the layer again, skipping files already written, only when the transfer
// itself failed transiently and the store has not already retried it to
// exhaustion (retryLayer); a local write error or bad content is final.
func fetchLayer(ctx context.Context, s Store, desc v1.Descriptor, info LayerInfo, want map[string]*Entry,
	dst func(*Entry) string, written *atomic.Int64, o Options) (int64, error) {
	done := map[string]bool{}
	var total int64
	backoff := layerRetryBackoff
	for attempt := 0; ; attempt++ {
		n, err := fetchLayerOnce(ctx, s, desc, info, want, dst, done, written, o)
		total += n
		if err == nil {
			for name := range want {
				if !done[name] {
					return total, verifyErrorf("%s: layer %s lacks %s, which the index places there", s, desc.Digest, name)
				}
			}
			return total, nil
		}
		if !retryLayer(err) || ctx.Err() != nil || attempt >= layerRetries {
			return total, err
		}
		o.log().Warn("layer download failed; retrying", "layer", desc.Digest.String(), "attempt", attempt+1, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return total, ctx.Err()
		}
		backoff *= 2
	}
}

func fetchLayerOnce(ctx context.Context, s Store, desc v1.Descriptor, info LayerInfo, want map[string]*Entry,
	dst func(*Entry) string, done map[string]bool, written *atomic.Int64, o Options) (n int64, err error) {
	rc, err := s.ReadBlob(ctx, desc.Digest)
	if err != nil {
		return 0, &transferError{err: fmt.Errorf("%s: read layer %s: %w", s, desc.Digest, err), cause: err}
	}
	defer rc.Close()
	add, finish := startProgress(o.Progress, "pull "+string(info.Cache)+" "+short(desc.Digest), desc.Size)
	defer finish()
	dh := sha256.New()
	cr := &countReader{r: io.TeeReader(io.LimitReader(bufio.NewReaderSize(rc, readBufSize), desc.Size+1), dh), add: add}
	defer func() { err = classifyLayerErr(err, cr) }()
	zr, err := newDecoder(cr)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	lr := &strictLimit{r: zr, n: info.Size, what: fmt.Sprintf("layer %s", desc.Digest)}
	tr := tar.NewReader(lr)
	seen := map[string]bool{}
	buf := hashBufPool.Get().(*[]byte)
	defer hashBufPool.Put(buf)
	fh := sha256.New()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cr.n, corruptOr(err, cr, dh, desc, "%s: layer %s", s, desc.Digest)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			return cr.n, verifyErrorf("%s: layer %s: member %q has tar type %q: only regular files are allowed (no links, devices or fifos)", s, desc.Digest, hdr.Name, hdr.Typeflag)
		}
		if err := checkPath(hdr.Name); err != nil {
			return cr.n, verifyErrorf("%s: layer %s: member %q: %v", s, desc.Digest, hdr.Name, err)
		}
		if hdr.Mode&^0o777 != 0 {
			return cr.n, verifyErrorf("%s: layer %s: member %q has mode %o (setuid, setgid or sticky refused)", s, desc.Digest, hdr.Name, hdr.Mode)
		}
		if seen[hdr.Name] {
			return cr.n, verifyErrorf("%s: layer %s: duplicate member %q", s, desc.Digest, hdr.Name)
		}
		seen[hdr.Name] = true
		e := want[hdr.Name]
		if e == nil || done[hdr.Name] {
			continue // superseded, reused or already written: tar skips it
		}
		if hdr.Size != e.Size {
			return cr.n, verifyErrorf("%s: layer %s: %s is %d bytes, the index says %d", s, desc.Digest, hdr.Name, hdr.Size, e.Size)
		}
		// The tar reader has read exactly the headers: what lr gave so
		// far is the content's offset, which a range reader relies on.
		if at := info.Size - lr.n; e.Offset >= 0 && at != e.Offset {
			return cr.n, verifyErrorf("%s: layer %s: %s is at offset %d, the index says %d", s, desc.Digest, hdr.Name, at, e.Offset)
		}
		if err := writeFile(dst(e), tr, e, *buf, fh); err != nil {
			var pe *fs.PathError
			if !errors.As(err, &pe) {
				// Not the file: the layer's bytes ran out or broke.
				return cr.n, corruptOr(err, cr, dh, desc, "%s: layer %s: %s", s, desc.Digest, hdr.Name)
			}
			return cr.n, wrapRead(err, "%s: layer %s: %s", s, desc.Digest, hdr.Name)
		}
		done[hdr.Name] = true
		if written.Add(1) == 10 {
			crashPoint("pull-extract")
		}
	}
	// Read to the end so the whole blob is digest-checked.
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return cr.n, corruptOr(err, cr, dh, desc, "%s: layer %s", s, desc.Digest)
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return cr.n, wrapRead(err, "%s: layer %s", s, desc.Digest)
	}
	if cr.n != desc.Size {
		return cr.n, verifyErrorf("%s: layer %s is %d bytes, the manifest says %d", s, desc.Digest, cr.n, desc.Size)
	}
	if got := hex.EncodeToString(dh.Sum(nil)); got != desc.Digest.Hex {
		return cr.n, verifyErrorf("%s: layer %s: content digest is sha256:%s", s, desc.Digest, got)
	}
	return cr.n, nil
}

// wrapRead keeps a VerifyError a VerifyError while adding context.
func wrapRead(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	var ve *VerifyError
	if errors.As(err, &ve) {
		return &VerifyError{Err: fmt.Errorf("%s: %w", msg, err)}
	}
	return fmt.Errorf("%s: %w", msg, err)
}

func writeFile(p string, r io.Reader, e *Entry, buf []byte, h interface {
	io.Writer
	Sum([]byte) []byte
	Reset()
}) error {
	// Created with its final mode (a new file is writable through this
	// descriptor even when the mode is 0444); chmod only if umask cut it.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(e.Mode))
	if err != nil {
		return err
	}
	h.Reset()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(r, e.Size), buf)
	if err == nil && n != e.Size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
			err = verifyErrorf("content sha256 %s, the index says %s (corrupt or tampered with)", got, e.SHA256)
		}
	}
	if err == nil && umask()&fs.FileMode(e.Mode) != 0 {
		err = f.Chmod(fs.FileMode(e.Mode))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
	}
	return err
}

// corruptOr classifies an error met while decoding a layer. When the
// transfer itself failed (cr saw a read error) it is returned as is, so the
// download is retried. Otherwise the bytes arrived intact but do not decode:
// they are corrupt or tampered with, which no retry fixes. The rest of the
// blob is hashed so the error can say whether it matches its digest.
func corruptOr(err error, cr *countReader, dh hash.Hash, desc v1.Descriptor, format string, args ...any) error {
	var ve *VerifyError
	if cr.err != nil || errors.As(err, &ve) {
		return wrapRead(err, format, args...)
	}
	msg := fmt.Sprintf(format, args...)
	if _, cerr := io.Copy(io.Discard, cr); cerr == nil && cr.n == desc.Size {
		if got := hex.EncodeToString(dh.Sum(nil)); got != desc.Digest.Hex {
			return verifyErrorf("%s: content digest is sha256:%s: the blob is corrupt or was tampered with (%v)", msg, got, err)
		}
	}
	return verifyErrorf("%s: does not decode: %v", msg, err)
}

type countReader struct {
	r   io.Reader
	n   int64
	add func(int64)
	err error // the first read error other than io.EOF
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	c.n += int64(n)
	if n > 0 {
		c.add(int64(n))
	}
	return n, err
}

// strictLimit fails with a VerifyError when r yields more than n bytes.
type strictLimit struct {
	r    io.Reader
	n    int64
	what string
}

func (l *strictLimit) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		if k, _ := l.r.Read(one[:]); k > 0 {
			return 0, verifyErrorf("%s decompresses to more bytes than the config declares", l.what)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func linkOrCopy(from, to string) error {
	err := os.Link(from, to)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EMLINK) {
		return fmt.Errorf("stage %s: %w", from, err)
	}
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm()|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Chmod(fi.Mode().Perm()); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

var umaskOnce = sync.OnceValue(func() fs.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return fs.FileMode(m)
})

func umask() fs.FileMode { return umaskOnce() }

type fileOwner struct{ uid, gid int }

// ownerOf returns the owner of p itself (not of a link's target), or nil.
func ownerOf(p string) *fileOwner {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil
	}
	uid, gid, ok := fsutil.OwnerOf(fi)
	if !ok {
		return nil
	}
	return &fileOwner{uid: uid, gid: gid}
}

func sameDevice(a, b string) error {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return fmt.Errorf("stat %s: %w", a, err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		return fmt.Errorf("stat %s: %w", b, err)
	}
	if sa.Dev != sb.Dev {
		return fmt.Errorf("restore needs %s and %s on one filesystem (staging is swapped in by rename)", b, a)
	}
	return nil
}

var syncMu sync.Mutex

// syncFS flushes the filesystem holding p (one syncfs(2) instead of an fsync
// per file) before the swap makes the staged files live.
func syncFS(p string) error {
	syncMu.Lock()
	defer syncMu.Unlock()
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
