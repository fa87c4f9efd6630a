package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"time"

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

func refRecordPath(l mount.Layout, store, tag string) string {
	return filepath.Join(l.State, snapshotsDir, "ref-"+recordName(store, tag))
}

func pullRecordPath(l mount.Layout, store string) string {
	return filepath.Join(l.State, snapshotsDir, "pull-"+recordName(store))
}

func readRecord(p string) (*BaseRecord, error) { return mount.ReadJSONFile[BaseRecord](p) }

// recordBase remembers digest as the base for (store, tag); a pull is also
// remembered as the store's last pull, the fallback base of a push under a
// new tag (a CI job restores key A and saves key B).
func recordBase(l mount.Layout, r BaseRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if r.Tag != "" {
		if err := mount.WriteFileAtomic(refRecordPath(l, r.Store, r.Tag), b, 0o644); err != nil {
			return err
		}
	}
	if r.Direction == "pull" {
		return mount.WriteFileAtomic(pullRecordPath(l, r.Store), b, 0o644)
	}
	return nil
}

// baseFor returns the record a push to (store, tag) deltas against, or nil.
func baseFor(l mount.Layout, store, tag string) (*BaseRecord, error) {
	if tag != "" {
		r, err := readRecord(refRecordPath(l, store, tag))
		if r != nil || err != nil {
			return r, err
		}
	}
	return readRecord(pullRecordPath(l, store))
}
