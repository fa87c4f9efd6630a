package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/melcache/melcache/mount"
)

// sameFile reports whether a local file entry holds the same content as a
// base (or index) entry, for the purpose of deltas, verify and a merge
// pull. It is the one place that decides which byte differences count: a
// GOCACHE "-a" entry that differs from the base only in its time field is
// the same entry (docs/format.md, "Deltas"). Go rewrites an action entry
// with a new time whenever it records the same action again, so without
// this rule an unchanged warm build would push a new layer and index.
//
// For such an entry sameFile reads the local file (175 bytes, never
// through a link); local must then come from a scan (its root set).
func sameFile(local, base *Entry) bool {
	if local.Size != base.Size {
		return false
	}
	if local.SHA256 == base.SHA256 {
		return true
	}
	if local.st.root == "" || !volatileAction(local.Cache, local.Path, base) {
		return false
	}
	b, err := readAction(filepath.Join(local.st.root, filepath.FromSlash(local.Path)))
	return err == nil && sameAction(b, base)
}

// volatileAction reports whether the -a rule can apply to the local file
// (c, p) against base: both the same GOCACHE action entry, the base's
// time field known.
func volatileAction(c mount.Cache, p string, base *Entry) bool {
	if c != mount.GoCache || base.Cache != c || base.Path != p || base.GoTime <= 0 || base.Size != mount.ActionEntryLen {
		return false
	}
	_, ok := mount.ActionID(p)
	return ok
}

// sameAction reports whether the action entry content b, with its time
// field replaced by base's, is base's content. Anything else in b that
// differs (the output id, the size) makes it another entry.
func sameAction(b []byte, base *Entry) bool {
	if len(b) != mount.ActionEntryLen || base.GoTime <= 0 {
		return false
	}
	sum := sha256.Sum256(mount.ActionWithTime(b, base.GoTime))
	return hex.EncodeToString(sum[:]) == base.SHA256
}

// readAction reads a local action entry, at most one byte more than an
// entry, without following a link.
func readAction(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, mount.ActionEntryLen+1))
}
