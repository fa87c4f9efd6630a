package cacheprog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// entryPerm is the mode of new entries, as Go makes them (0666 less the
// usual umask).
const entryPerm = 0o644

// tempPrefix starts the temporary files of a put, in the entry's shard:
// not an entry name, so Go, status, verify and push skip a crash's debris.
const tempPrefix = ".cacheprog-tmp-"

// Put implements Backend.
func (s *Store) Put(_ context.Context, action, output ID, body io.Reader, size int64) (Object, error) {
	obj, err := s.store(action, output, body, size)
	if err == nil {
		s.stats.put(size)
	}
	return obj, err
}

// store writes the output (checked against its ID and size while it is
// written) and then the action entry, each to a temporary file renamed
// over the name: a reader never sees a partial entry, and a link planted at
// a name is replaced, not written through. The action entry comes last, so
// it never names an output that is not there.
func (s *Store) store(action, output ID, body io.Reader, size int64) (Object, error) {
	if size < 0 {
		return Object{}, fmt.Errorf("cacheprog: put of action %s: negative size %d", action, size)
	}
	for _, id := range []ID{output, action} {
		if err := s.shard(id); err != nil {
			return Object{}, err
		}
	}
	if err := s.writeOutput(output, body, size); err != nil {
		return Object{}, fmt.Errorf("cacheprog: put of action %s: %w", action, err)
	}
	return s.storeAction(action, output, size)
}

// storeAction writes NN/ACTION-a naming output, which is in the store.
func (s *Store) storeAction(action, output ID, size int64) (Object, error) {
	e := mount.ActionEntry{ID: action.String(), Out: output.String(), Size: size, Time: s.now()}
	err := s.write(action.name("a"), func(w io.Writer) error {
		_, err := w.Write(e.Format())
		return err
	})
	if err != nil {
		return Object{}, fmt.Errorf("cacheprog: put of action %s: %w", action, err)
	}
	return Object{OutputID: output, Size: size, Time: e.Time, DiskPath: s.diskPath(output.name("d"))}, nil
}

// writeOutput writes NN/OUTPUT-d from body, checked against the output ID
// and size while it is written; the shard must exist.
func (s *Store) writeOutput(output ID, body io.Reader, size int64) error {
	return s.write(output.name("d"), func(w io.Writer) error {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(body, size+1))
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("body has %d bytes or more, want %d", n, size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != output.String() {
			return fmt.Errorf("body's SHA-256 is %s, not its output ID", got)
		}
		return nil
	})
}

// PutOutput stores an output without an action entry (NN/OUTPUT-d, as Go
// would leave it): a lazy Remote keeps there what it fetched alongside an
// object, so that the action naming it needs no second fetch. A regular
// file of that size already there is kept.
func (s *Store) PutOutput(output ID, body []byte) error {
	if s.hasOutput(output, int64(len(body))) {
		return nil
	}
	if err := s.shard(output); err != nil {
		return err
	}
	if err := s.writeOutput(output, bytes.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("cacheprog: output %s: %w", output, err)
	}
	return nil
}

// hasOutput reports NN/OUTPUT-d as a regular file (not a link) of the
// given size: the check a get makes of an -a's output (statEntry), so the
// write-ahead of every fetched frame costs one fstatat per output, not
// the ~20 calls of an os.Root open.
func (s *Store) hasOutput(output ID, size int64) bool {
	fi, err := s.statEntry(output.name("d"))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// write replaces the entry name atomically. No fsync: like Go's own cache,
// an entry lost or torn by a crash is a miss (the size check) or caught by
// verify, and an fsync per object would cost more than the rebuild.
func (s *Store) write(name string, content func(io.Writer) error) error {
	return fsutil.WriteFileFuncIn(s.root, name, func(w io.Writer) error {
		if err := content(w); err != nil {
			return err
		}
		if f, ok := w.(*os.File); ok && s.owner != nil {
			return f.Chown(s.owner.uid, s.owner.gid)
		}
		return nil
	}, fsutil.WriteOptions{Perm: entryPerm, Sync: fsutil.SyncNone, TempPrefix: tempPrefix})
}

// shard makes the ID's shard directory when missing; a link or a file
// there is refused (ErrLink), never followed or replaced.
func (s *Store) shard(id ID) error {
	if _, err := s.root.Lstat(id.shard()); err == nil {
		_, err := fsutil.MkdirIn(s.root, id.shard(), gocachePerm) // checks it
		return err
	}
	if _, err := fsutil.MkdirIn(s.root, id.shard(), gocachePerm); err != nil {
		return err
	}
	if s.owner != nil {
		return s.root.Lchown(id.shard(), s.owner.uid, s.owner.gid)
	}
	return nil
}
