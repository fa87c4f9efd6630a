package cacheprog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
)

// Store keeps objects in a GOCACHE directory in Go's own layout. Every
// name is built from a validated ID and resolved inside an os.Root on the
// directory; shard directories and entries that are links are never
// followed. It is safe for concurrent use.
type Store struct {
	root    *os.Root
	beneath *fsutil.Beneath // the one-call lookups of gets; nil without openat2
	dir     string          // host path of the GOCACHE dir
	diskDir string          // the same dir as the go command sees it
	remote  Remote
	stats   *Stats
	now     func() time.Time
	owner   *owner

	// ahead are the actions a lazy Remote wrote before any get asked for
	// them (from a frame fetched for another get) and no get has used
	// yet: the first hit of one counts as a remote fetch with no wait, so
	// the report's remote figures stay what the build took from the
	// snapshot. fetched are the actions a get asked the Remote for, which
	// that get counts: one written ahead as well is not counted again.
	aheadMu sync.Mutex
	ahead   map[ID]bool
	fetched map[ID]bool
}

// StoreOptions configure OpenStore.
type StoreOptions struct {
	// DiskDir is the directory DiskPaths are given in: the guest path of
	// the GOCACHE dir in the melange bridge. "" means the host path.
	DiskDir string
	// Remote is asked on a local miss; nil means local only.
	Remote Remote
	// Stats counts what the store does; nil counts nothing.
	Stats *Stats
	// Now is the clock for use marks and new entries; nil means time.Now.
	Now func() time.Time
}

// owner is who new files belong to when the store runs as root: the owner
// of the GOCACHE dir (the build user), so that plain go can still
// overwrite the entries it finds.
type owner struct{ uid, gid int }

// gocachePerm is the mode of a new GOCACHE dir or shard, as Go makes them
// (0777 less the usual umask).
const gocachePerm = 0o755

// OpenStore opens the GOCACHE directory dir (DIR/gocache), creating it
// (one level) when missing. A link at dir is refused. The caller closes
// the store.
func OpenStore(dir string, o StoreOptions) (*Store, error) {
	if err := os.Mkdir(dir, gocachePerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cacheprog: %w", err)
	}
	root, err := fsutil.OpenRootNoFollow(dir)
	if err != nil {
		return nil, fmt.Errorf("cacheprog: %w", err)
	}
	s := &Store{root: root, dir: dir, diskDir: o.DiskDir, remote: o.Remote, stats: o.Stats, now: o.Now}
	// Without openat2 (an old kernel, a seccomp filter) gets take the
	// os.Root path: the same answers in about three times the calls.
	s.beneath, _ = fsutil.OpenBeneath(root)
	if s.diskDir == "" {
		s.diskDir = dir
	}
	if s.stats == nil {
		s.stats = new(Stats)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if os.Geteuid() == 0 {
		if fi, err := root.Stat("."); err == nil {
			if uid, gid, ok := fsutil.OwnerOf(fi); ok && uid != 0 {
				s.owner = &owner{uid, gid}
			}
		}
	}
	return s, nil
}

// Close closes the store's directory.
func (s *Store) Close() error {
	if s.beneath != nil {
		s.beneath.Close()
	}
	return s.root.Close()
}

// Dir is the host path of the GOCACHE dir.
func (s *Store) Dir() string { return s.dir }

// diskPath is the DiskPath of the entry name (relative to GOCACHE).
func (s *Store) diskPath(name string) string {
	return filepath.Join(s.diskDir, filepath.FromSlash(name))
}

// display is the host path of name, for errors.
func (s *Store) display(name string) string { return filepath.Join(s.dir, filepath.FromSlash(name)) }

// storeFetchedAction stores the action entry of a fetched object whose
// output the Remote already put in the store (PutOutput, checked against
// its ID then): a regular file of the size, or the fetch fails.
func (s *Store) storeFetchedAction(action ID, f Fetched) (Object, error) {
	if !s.hasOutput(f.OutputID, f.Size) {
		return Object{}, fmt.Errorf("output %s is not in %s", f.OutputID, s.dir)
	}
	if err := s.shard(action); err != nil {
		return Object{}, err
	}
	return s.storeAction(action, f.OutputID, f.Size)
}

// Get implements Backend: the local entry, else the Remote's.
func (s *Store) Get(ctx context.Context, action ID) (Object, bool, error) {
	obj, ok, err := s.local(action)
	if ok || err != nil || s.remote == nil {
		return obj, ok, err
	}
	return s.fetch(ctx, action)
}

// getNow implements localGetter: a local hit, or a miss when there is no
// Remote to ask.
func (s *Store) getNow(action ID) (Object, bool, bool, error) {
	obj, ok, err := s.local(action)
	return obj, ok, ok || err != nil || s.remote == nil, err
}

// local is getLocal, counting the first hit of an action written ahead as
// the remote fetch it stands for.
func (s *Store) local(action ID) (Object, bool, error) {
	obj, ok, err := s.getLocal(action)
	if ok && s.remote != nil && s.tookAhead(action) {
		s.stats.remoteWait(0, obj.Size)
	}
	return obj, ok, err
}

// storeAhead is storeFetchedAction for an action no get has asked for
// yet (SnapshotRemote.writeAhead). An action the local cache already
// holds is left as it is (the build's own entry, or one a get fetched):
// only a local miss is taken from the snapshot, and counted.
func (s *Store) storeAhead(action ID, f Fetched) error {
	if _, _, _, ok, _ := s.findLocal(action); ok {
		return nil
	}
	if _, err := s.storeFetchedAction(action, f); err != nil {
		return err
	}
	s.aheadMu.Lock()
	defer s.aheadMu.Unlock()
	if s.fetched[action] {
		return nil // a get fetched it meanwhile, and counted it
	}
	if s.ahead == nil {
		s.ahead = map[ID]bool{}
	}
	s.ahead[action] = true
	return nil
}

// fetching records that a get asks the Remote for action, and counts it:
// an entry written ahead of it is not counted again.
func (s *Store) fetching(action ID) {
	s.aheadMu.Lock()
	defer s.aheadMu.Unlock()
	if s.fetched == nil {
		s.fetched = map[ID]bool{}
	}
	s.fetched[action] = true
	delete(s.ahead, action)
}

// tookAhead reports, once, that action was written ahead.
func (s *Store) tookAhead(action ID) bool {
	s.aheadMu.Lock()
	defer s.aheadMu.Unlock()
	if !s.ahead[action] {
		return false
	}
	delete(s.ahead, action)
	return true
}

// fetch asks the Remote for action and stores what it returns.
func (s *Store) fetch(ctx context.Context, action ID) (Object, bool, error) {
	s.fetching(action)
	t0 := time.Now()
	f, err := s.remote.Fetch(ctx, action)
	if errors.Is(err, ErrNotFound) {
		s.stats.remoteWait(time.Since(t0), 0)
		return Object{}, false, nil
	} else if err != nil {
		s.stats.remoteWait(time.Since(t0), 0)
		return Object{}, false, fmt.Errorf("remote fetch of action %s: %w", action, err)
	}
	var obj Object
	if f.Body == nil {
		obj, err = s.storeFetchedAction(action, f)
	} else {
		defer f.Body.Close()
		obj, err = s.store(action, f.OutputID, f.Body, f.Size)
	}
	s.stats.remoteWait(time.Since(t0), f.Size)
	if err != nil {
		return Object{}, false, fmt.Errorf("remote fetch of action %s: %w", action, err)
	}
	return obj, true, nil
}
