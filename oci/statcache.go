package oci

import (
	"log/slog"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// The stat cache (docs/format.md, "Stat cache") lets a push skip hashing a
// file it hashed before: DIR/.melcache/statcache maps (cache, path) to the
// file's size, mtime, ctime and inode when it was read, and what it held
// (sha256, an action entry's time field, its output class). A record is
// trusted only when all four stat fields still match and the file was last
// changed well before the push that recorded it started (racyWindow).
//
// The file is written by an untrusted build like the rest of DIR. It only
// ever decides that a file still equals its last hashed content: packFile
// hashes every byte it packs, so a forged record can make a push keep the
// base's verified copy of a file, never write a layer the index
// misdescribes.

// statCacheName is the stat cache's name in the state directory.
const statCacheName = "statcache"

// statCacheMagic starts the (decompressed) stat cache; its last byte is
// the encoding's version. Another version is ignored like a damaged file.
const statCacheMagic = "melcache statcache\x00\x02"

// racyWindow: a record is trusted only when the file's mtime and ctime are
// this much older than the time the recording push started reading files.
// A change within one timestamp tick of the read could leave every stat
// field as recorded; 2 s covers the coarsest timestamps Linux filesystems
// keep (FAT's 2 s; ext4, xfs and tmpfs tick every few ms), as git's racy
// check does with its index file's mtime.
const racyWindow = 2 * time.Second

// maxStatCacheBytes bounds the stat cache, compressed and decompressed: a
// record is ~150 bytes for a GOCACHE file, so 256 MiB holds over a million
// files, far beyond real caches (oras: 4,107), while a hostile file cannot
// make a push allocate more.
const maxStatCacheBytes = 256 << 20

// fileStat is what a scan saw of a local file. It is not indexed.
type fileStat struct {
	size, mtime, ctime int64 // at the stat (ns)
	ino                uint64
	// root is the file's cache root (Entry.Path is relative to it); ""
	// for an entry that was not scanned.
	root string
	// class is, for a GOCACHE output ("-d"), its class and, for an action
	// ("-a"), OutputModIndex when it names a module-index output.
	class mount.OutputClass
	// out is the output id an action entry read by this scan names.
	out string
	// cached says SHA256, GoTime and class came from a trusted stat
	// cache record; read says the scan read the file's content.
	cached, read bool
	// noRecord: the file changed while it was read; its hash is not
	// recorded. gone: it was removed before it could be read.
	noRecord, gone bool
}

// statRecord is one stat cache record.
type statRecord struct {
	size, mtime, ctime int64
	ino                uint64
	sha                string // the 32-byte digest, raw; "" when unknown
	goTime             int64
	class              mount.OutputClass
	out                string // a GOCACHE action's output id, raw; "" when unknown
}

// statCache holds records by (cache, path). since is when the push that
// wrote it started reading files (Unix ns): records changed less than
// racyWindow before it are not trusted.
type statCache struct {
	since int64
	recs  map[entryKey]statRecord
	// pushed is the snapshot the recording push wrote, when it indexed
	// exactly the tree it walked (unchangedpush.go); zero otherwise.
	pushed pushedTree
}

func newStatCache(since time.Time) *statCache {
	return &statCache{since: since.UnixNano(), recs: map[entryKey]statRecord{}}
}

// lookup returns e's record when it can be trusted: same size, mtime,
// ctime and inode, and not racy.
func (sc *statCache) lookup(e *Entry) (statRecord, bool) {
	if sc == nil {
		return statRecord{}, false
	}
	r, ok := sc.recs[e.id()]
	if !ok || r.size != e.st.size || r.mtime != e.st.mtime || r.ctime != e.st.ctime || r.ino != e.st.ino {
		return statRecord{}, false
	}
	if sc.racy(r) {
		return statRecord{}, false
	}
	return r, true
}

// carry copies into sc the records of old for caches this push did not
// scan (push --only), so a partial push does not make the next full one
// hash the other caches again. Only records old would trust are carried:
// a racy one must not become trusted under sc's later time.
func (sc *statCache) carry(old *statCache, scanned []mount.Cache) {
	if old == nil {
		return
	}
	skip := map[mount.Cache]bool{}
	for _, c := range scanned {
		skip[c] = true
	}
	for k, r := range old.recs {
		if !skip[k.c] && !old.racy(r) {
			sc.recs[k] = r
		}
	}
}

// racy reports whether r's file changed within racyWindow of sc's time.
func (sc *statCache) racy(r statRecord) bool {
	limit := sc.since - int64(racyWindow)
	return r.mtime >= limit || r.ctime >= limit
}

// record remembers what the scan learnt of file entry e.
func (sc *statCache) record(e *Entry) {
	if e.st.noRecord || e.st.root == "" {
		return
	}
	sc.recs[e.id()] = statRecord{size: e.st.size, mtime: e.st.mtime, ctime: e.st.ctime, ino: e.st.ino,
		sha: rawSHA(e.SHA256), goTime: e.GoTime, class: e.st.class, out: rawSHA(e.st.out)}
}

// fillPacked records the digests packing computed for files the scan did
// not hash (a full push hashes while packing): entries are the pushed
// index, whose file entries in layers firstNew and up were packed by this
// push. Files the scan hashed keep the scan's digest: it was read right
// after the recorded stat.
func (sc *statCache) fillPacked(entries []Entry, firstNew int) {
	for i := range entries {
		e := &entries[i]
		if e.Type != TypeFile || e.Layer < firstNew || e.SHA256 == "" {
			continue
		}
		r, ok := sc.recs[e.id()]
		if !ok {
			continue
		}
		if r.sha == "" {
			r.sha, r.goTime = rawSHA(e.SHA256), e.GoTime
		}
		if r.out == "" {
			r.out = rawSHA(e.st.out) // packOrder read it
		}
		sc.recs[e.id()] = r
	}
}

// loadStatCache reads the layout's stat cache. A missing, unreadable,
// oversized or malformed one is ignored (logged at debug level): the push
// then hashes every file, which is always correct.
func loadStatCache(l mount.Layout, log *slog.Logger) *statCache {
	b, err := mount.ReadStateBytes(l, statCacheName, maxStatCacheBytes)
	if err == nil && b == nil {
		return nil
	}
	var sc *statCache
	if err == nil {
		sc, err = decodeStatCache(b)
	}
	if err != nil {
		log.Debug("ignoring the stat cache; hashing every file", "err", err)
		return nil
	}
	return sc
}

// save writes the stat cache. Durability: none (fsutil.SyncNone): a lost
// or torn stat cache only makes the next push hash again, and the zstd
// frame's checksum makes a torn one fail to decode.
func (sc *statCache) save(l mount.Layout) error {
	b, err := sc.encode()
	if err != nil {
		return err
	}
	return mount.WriteStateBytes(l, statCacheName, b, fsutil.WriteOptions{Sync: fsutil.SyncNone})
}
