package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// snapshotsDir holds, under the layout's state directory, the records of
// the snapshots this cache directory pushed or pulled: the delta bases
// (docs/format.md, "Deltas: choosing the base").
const snapshotsDir = "snapshots"

// maxRegistryRecords is how many repositories of one registry the
// registry record remembers. A builder exchanges snapshots with a handful
// of repositories (a cache per project or branch); the cross-repository
// rule wants the newest few, and a bound keeps a record the build can
// write (and so inflate) cheap to read and to act on: each candidate may
// cost a manifest request.
const maxRegistryRecords = 8

// BaseRecord is a snapshot a cache directory exchanged with a store.
type BaseRecord struct {
	Store     string    `json:"store"`
	Tag       string    `json:"tag"`
	Digest    string    `json:"digest"`
	Direction string    `json:"direction"`
	Time      time.Time `json:"time"`
}

// registryRecord lists the newest exchange with each of the last few
// repositories of one registry, newest first.
type registryRecord struct {
	Recent []BaseRecord `json:"recent"`
}

func recordName(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12]) + ".json"
}

// storeRecord names the record of the newest exchange with a store, under
// any tag, of a snapshot holding exactly caches: rule (b) of the base rule.
// The cache set is part of the name so that a partial push or pull
// (--only) does not replace the record a full push deltas against: a base
// lacking one of the push's caches would make that whole cache new.
func storeRecord(store string, caches []mount.Cache) string {
	names := make([]string, len(caches))
	for i, c := range caches {
		names[i] = string(c)
	}
	return filepath.Join(snapshotsDir, "store-"+recordName(store, strings.Join(names, ",")))
}

// registryRecordName names the record of the newest exchanges with the
// repositories of one registry: rule (d).
func registryRecordName(registry string) string {
	return filepath.Join(snapshotsDir, "registry-"+recordName(registry))
}

// refRecord and pullRecord name the records melcache wrote before the
// store record existed (per store and tag, and per store for pulls). They
// are still read, so the first push after an upgrade keeps its base.
func refRecord(store, tag string) string {
	return filepath.Join(snapshotsDir, "ref-"+recordName(store, tag))
}

func pullRecord(store string) string {
	return filepath.Join(snapshotsDir, "pull-"+recordName(store))
}

func readRecord(l mount.Layout, name string) (*BaseRecord, error) {
	return mount.ReadState[BaseRecord](l, name)
}

// writeRecord records v under name.
//
// Durability: fsutil.SyncFile. A base record only picks the snapshot the
// next push deltas against; losing one to a crash makes that push larger
// (an older base, or none), never wrong, so it does not wait for a
// directory flush.
func writeRecord(l mount.Layout, name string, v any) error {
	return mount.WriteState(l, name, v, fsutil.WriteOptions{Sync: fsutil.SyncFile})
}

// recordBase remembers r as the newest exchange with its store and, when
// registry is not "" (a registry store), with that registry.
//
// The registry record is read, changed and written without a lock: two
// pushes from one directory to two repositories at once may lose one of
// the two entries, which costs a later cross-repository push its base,
// never correctness.
func recordBase(l mount.Layout, registry string, caches []mount.Cache, r BaseRecord) error {
	if err := writeRecord(l, storeRecord(r.Store, caches), r); err != nil {
		return err
	}
	if registry == "" {
		return nil
	}
	name := registryRecordName(registry)
	old, err := mount.ReadState[registryRecord](l, name)
	if err != nil || old == nil {
		old = &registryRecord{} // an unreadable record is replaced
	}
	rec := registryRecord{Recent: []BaseRecord{r}}
	for _, o := range old.Recent {
		if len(rec.Recent) == maxRegistryRecords {
			break
		}
		if o.Store != r.Store {
			rec.Recent = append(rec.Recent, o)
		}
	}
	return writeRecord(l, name, rec)
}
