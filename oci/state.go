package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// snapshotsDir holds, under the layout's state directory, one record per
// (store, tag) of the snapshot last pushed or pulled: the delta bases.
const snapshotsDir = "snapshots"

// BaseRecord is the snapshot a cache directory last exchanged with a store
// under a tag.
type BaseRecord struct {
	Store     string    `json:"store"`
	Tag       string    `json:"tag"`
	Digest    string    `json:"digest"`
	Direction string    `json:"direction"`
	Time      time.Time `json:"time"`
}

func recordName(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12]) + ".json"
}

// refRecord and pullRecord name records inside the state directory.
func refRecord(store, tag string) string {
	return filepath.Join(snapshotsDir, "ref-"+recordName(store, tag))
}

func pullRecord(store string) string {
	return filepath.Join(snapshotsDir, "pull-"+recordName(store))
}

func readRecord(l mount.Layout, name string) (*BaseRecord, error) {
	return mount.ReadState[BaseRecord](l, name)
}

// writeRecord records r under name.
//
// Durability: fsutil.SyncFile. A base record only picks the snapshot the
// next push deltas against; losing one to a crash makes that push larger
// (an older base, or none), never wrong, so it does not wait for a
// directory flush.
func writeRecord(l mount.Layout, name string, r BaseRecord) error {
	return mount.WriteState(l, name, r, fsutil.WriteOptions{Sync: fsutil.SyncFile})
}

// recordBase remembers digest as the base for (store, tag); a pull is also
// remembered as the store's last pull, the fallback base of a push under a
// new tag (a CI job restores key A and saves key B).
func recordBase(l mount.Layout, r BaseRecord) error {
	if r.Tag != "" {
		if err := writeRecord(l, refRecord(r.Store, r.Tag), r); err != nil {
			return err
		}
	}
	if r.Direction == "pull" {
		return writeRecord(l, pullRecord(r.Store), r)
	}
	return nil
}

// baseFor returns the record a push to (store, tag) deltas against, or nil.
func baseFor(l mount.Layout, store, tag string) (*BaseRecord, error) {
	if tag != "" {
		r, err := readRecord(l, refRecord(store, tag))
		if r != nil || err != nil {
			return r, err
		}
	}
	return readRecord(l, pullRecord(store))
}
