// Package fsutil is melcache's one home for file-system helpers that are not
// about any one kind of directory: the atomic file write (with the
// durability the caller asks for), directory fsync, removal of read-only
// module trees, JSON state files, and reading a file's owner. Sizes and
// durations are parsed and printed by package internal/units.
//
// # Durability
//
// WriteFile never shows a partial file: it writes a temporary file in the
// target's directory and renames it over the target, so a reader sees the
// old content or the new, and a failed write leaves the old content and no
// temporary file. What a caller chooses (Sync) is how far the new content
// must have reached the disk when WriteFile returns: whether a crash can
// lose the rename, and, with SyncNone only, tear the file. Each caller says
// in a comment why it picks its level.
//
// # Opening relative to a directory
//
// State files live under DIR/.melcache, a directory inside a cache dir that
// other users (the build user, a container) may write to. Every helper
// therefore has a form that takes the directory and the name separately
// (WriteFileAt, ReadJSON, WriteJSON) or an open *os.Root (WriteFileIn,
// ReadJSONIn, WriteJSONIn). Those forms resolve name with os.Root, so it can
// never lead outside the directory, and:
//
//   - a write never follows a link planted at name: the temporary file is
//     created with O_CREATE|O_EXCL (which refuses links) and the rename
//     replaces a link at name instead of writing through it;
//   - KeepOwner reads the owner of name itself (Lstat), not of a link's
//     target;
//   - a read (ReadJSON, ReadJSONIn) refuses a link at name with ErrLink,
//     also one swapped in while the file is opened.
//
// The (dir, name) forms also refuse a link at dir's last element and at
// any directory named inside name ("snapshots" in "snapshots/x.json"):
// os.Root alone would follow a link that stays inside the directory, and
// state directories are never links (OpenRootNoFollow, CheckDirsIn). The
// path forms (WriteFile, WriteFileFunc) follow a link at the directory:
// their paths are ones a user gave (an OCI layout, a cache root). Package
// mount reaches DIR/.melcache only through its verified root (mount's
// OpenState), creating files there with OpenFileNoFollow and MkdirIn.
// Callers that keep one directory open for several files can open an
// os.Root once and use the In forms.
package fsutil
