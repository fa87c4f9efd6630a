package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/klauspost/compress/zstd"
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
const statCacheMagic = "melcache statcache\x00\x01"

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
}

// statCache holds records by (cache, path). since is when the push that
// wrote it started reading files (Unix ns): records changed less than
// racyWindow before it are not trusted.
type statCache struct {
	since int64
	recs  map[entryKey]statRecord
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
	limit := sc.since - int64(racyWindow)
	if r.mtime >= limit || r.ctime >= limit {
		return statRecord{}, false
	}
	return r, true
}

// record remembers what the scan learnt of file entry e.
func (sc *statCache) record(e *Entry) {
	if e.st.noRecord || e.st.root == "" {
		return
	}
	sc.recs[e.id()] = statRecord{size: e.st.size, mtime: e.st.mtime, ctime: e.st.ctime, ino: e.st.ino,
		sha: rawSHA(e.SHA256), goTime: e.GoTime, class: e.st.class}
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
		if r, ok := sc.recs[e.id()]; ok && r.sha == "" {
			r.sha, r.goTime = rawSHA(e.SHA256), e.GoTime
			sc.recs[e.id()] = r
		}
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

// The encoding is a zstd frame of statCacheMagic, since (varint), the
// record count (uvarint) and the records: cache and path (uvarint length
// and bytes), size, mtime, ctime (varints), inode (uvarint), class (one
// byte), goTime (varint), then a byte saying whether a 32-byte sha256
// follows. A flat binary stream rather than gob or JSON: 100k records
// decode in a few tens of milliseconds with one allocation per path, and
// a push of an unchanged cache should take a small fraction of a full one.
func (sc *statCache) encode() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(statCacheMagic)
	buf.Write(binary.AppendVarint(nil, sc.since))
	buf.Write(binary.AppendUvarint(nil, uint64(len(sc.recs))))
	var tmp []byte
	for k, r := range sc.recs {
		tmp = appendString(tmp[:0], string(k.c))
		tmp = appendString(tmp, k.p)
		for _, v := range []int64{r.size, r.mtime, r.ctime} {
			tmp = binary.AppendVarint(tmp, v)
		}
		tmp = binary.AppendUvarint(tmp, r.ino)
		tmp = append(tmp, byte(r.class))
		tmp = binary.AppendVarint(tmp, r.goTime)
		if len(r.sha) == sha256.Size {
			tmp = append(append(tmp, 1), r.sha...)
		} else {
			tmp = append(tmp, 0)
		}
		buf.Write(tmp)
		if buf.Len() > maxStatCacheBytes {
			return nil, fmt.Errorf("stat cache: over %d bytes; not written", maxStatCacheBytes)
		}
	}
	return compressBytes(buf.Bytes())
}

// rawSHA is the raw digest of a hex sha256, "" for "" or anything
// malformed. Records keep digests raw: decoding then allocates nothing
// per record (see decodeStatCache).
func rawSHA(s string) string {
	var sum [sha256.Size]byte
	if len(s) != 2*sha256.Size {
		return ""
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return ""
	}
	return string(sum[:])
}

// hexSHA is the hex form of a record's digest ("" for "").
func hexSHA(raw string) string {
	if raw == "" {
		return ""
	}
	return hex.EncodeToString([]byte(raw))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func decodeStatCache(z []byte) (*statCache, error) {
	// DecodeAll sizes its output from the frame header (EncodeAll writes
	// the content size) instead of growing a buffer; the memory limit
	// refuses a frame that claims or decodes to more.
	zr, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxStatCacheBytes), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	b, err := zr.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("stat cache: %w", err)
	}
	if !bytes.HasPrefix(b, []byte(statCacheMagic)) {
		return nil, errors.New("stat cache: not a stat cache of this version")
	}
	b = b[len(statCacheMagic):]
	// One string holds every path and digest: records slice it, so 100k
	// records cost one copy, not 200k allocations.
	d := &statDecoder{b: b, s: string(b)}
	since, n := d.varint(), d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) { // every record takes bytes
		d.err = errors.New("record count over the file's size")
	}
	sc := &statCache{since: since, recs: make(map[entryKey]statRecord, int(min(n, uint64(len(d.b)))))}
	for i := uint64(0); i < n && d.err == nil; i++ {
		k, r := d.record()
		if _, dup := sc.recs[k]; dup && d.err == nil {
			d.err = fmt.Errorf("duplicate record %s/%s", k.c, k.p)
		}
		sc.recs[k] = r
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("stat cache: %w", d.err)
	}
	return sc, nil
}

// statDecoder reads the stat cache encoding; the first error sticks. s
// holds the same bytes as b, which it consumes in step.
type statDecoder struct {
	b   []byte
	s   string
	err error
}

func (d *statDecoder) skip(n int) {
	d.b, d.s = d.b[n:], d.s[n:]
}

func (d *statDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("malformed %s", what)
	}
}

func (d *statDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.skip(n)
	return v
}

func (d *statDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.skip(n)
	return v
}

func (d *statDecoder) str(n uint64) string {
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail("length")
		return ""
	}
	v := d.s[:n]
	d.skip(int(n))
	return v
}

// record decodes and validates one record: names as a snapshot index
// allows them, no negative sizes or times, a known class.
func (d *statDecoder) record() (entryKey, statRecord) {
	cache, ok := mount.LookupCache(d.str(d.uvarint()))
	if !ok {
		d.fail("cache name")
	}
	p := d.str(d.uvarint())
	if checkPath(p) != nil {
		d.fail("path")
	}
	var r statRecord
	r.size, r.mtime, r.ctime = d.varint(), d.varint(), d.varint()
	r.ino = d.uvarint()
	if c := d.str(1); len(c) == 1 {
		r.class = mount.OutputClass(c[0])
	}
	r.goTime = d.varint()
	if r.size < 0 || r.goTime < 0 || r.class > mount.OutputExecutable {
		d.fail("record")
	}
	if has := d.str(1); has == "\x01" {
		r.sha = d.str(sha256.Size)
	} else if has != "\x00" {
		d.fail("digest flag")
	}
	return entryKey{cache, p}, r
}
