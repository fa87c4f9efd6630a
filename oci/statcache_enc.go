package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
	"github.com/melcache/melcache/mount"
)

// The encoding is a zstd frame of statCacheMagic, since (varint), the
// record count (uvarint) and the records: cache and path (uvarint length
// and bytes), size, mtime, ctime (varints), inode (uvarint), class (one
// byte), goTime (varint), then a flags byte saying which of a 32-byte
// sha256 (hasSHA) and, for a GOCACHE action entry, the 32-byte output id
// it names (hasOut, for packOrder) follow, in that order. After the
// records, four strings (uvarint length and bytes): the pushed tree's
// store, snapshot digest, caches and tree digest (pushedTree). A flat binary stream rather than gob or JSON: decoding is a
// loop over varints that slices one string for every path and digest, so
// 100k records cost a few allocations plus the map (TestStatCacheRoundTrip
// logs the time: about 0.15-0.2 s of CPU on a loaded 2-core builder), and
// a push of an unchanged cache should take a small fraction of a full one.
// The flags byte of a record.
const (
	hasSHA = 1 << iota
	hasOut
)

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
		var has byte
		if len(r.sha) == sha256.Size {
			has |= hasSHA
		}
		if len(r.out) == sha256.Size {
			has |= hasOut
		}
		tmp = append(tmp, has)
		if has&hasSHA != 0 {
			tmp = append(tmp, r.sha...)
		}
		if has&hasOut != 0 {
			tmp = append(tmp, r.out...)
		}
		buf.Write(tmp)
		if buf.Len() > maxStatCacheBytes {
			return nil, fmt.Errorf("stat cache: over %d bytes; not written", maxStatCacheBytes)
		}
	}
	for _, f := range []string{sc.pushed.store, sc.pushed.digest, sc.pushed.caches, sc.pushed.tree} {
		buf.Write(appendString(nil, f))
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
	sc.pushed = pushedTree{store: d.str(d.uvarint()), digest: d.str(d.uvarint()), caches: d.str(d.uvarint()), tree: d.str(d.uvarint())}
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
	has := d.str(1)
	if len(has) != 1 || has[0]&^(hasSHA|hasOut) != 0 {
		d.fail("digest flags")
		return entryKey{cache, p}, r
	}
	if has[0]&hasSHA != 0 {
		r.sha = d.str(sha256.Size)
	}
	if has[0]&hasOut != 0 {
		r.out = d.str(sha256.Size)
	}
	return entryKey{cache, p}, r
}
