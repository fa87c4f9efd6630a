package oci

import "github.com/melcache/melcache/mount"

// wireEntry is an index entry as a version 2 document stores it: a file
// always carries gen, offset and frame (frame 0 included), a directory
// none of them; goTime only on GOCACHE -a entries.
type wireEntry struct {
	Cache  mount.Cache `json:"cache"`
	Path   string      `json:"path"`
	Type   string      `json:"type"`
	Mode   uint32      `json:"mode"`
	Size   int64       `json:"size,omitempty"`
	SHA256 string      `json:"sha256,omitempty"`
	Gen    int         `json:"gen,omitempty"`
	Offset *int64      `json:"offset,omitempty"`
	Frame  *int64      `json:"frame,omitempty"`
	GoTime int64       `json:"goTime,omitempty"`
}

// wireDoc is a version 2 index document as written.
type wireDoc struct {
	FormatVersion int         `json:"formatVersion"`
	Entries       []wireEntry `json:"entries"`
	Deleted       []EntryRef  `json:"deleted,omitempty"`
}

// encodeIndexDoc encodes an index document deterministically. entries must
// be sorted (index order); the pointers into them live only during the
// call.
func encodeIndexDoc(entries []Entry, deleted []EntryRef) ([]byte, error) {
	d := wireDoc{FormatVersion: FormatVersion, Entries: make([]wireEntry, len(entries)), Deleted: deleted}
	for i := range entries {
		e := &entries[i]
		w := wireEntry{Cache: e.Cache, Path: e.Path, Type: e.Type, Mode: e.Mode, Size: e.Size, SHA256: e.SHA256}
		if e.Type == TypeFile {
			w.Gen, w.Offset, w.Frame, w.GoTime = e.Gen, &e.Offset, &e.Frame, e.GoTime
		}
		d.Entries[i] = w
	}
	return encodeJSON(&d)
}
