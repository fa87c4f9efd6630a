// Package mount manages the host cache directory that melange bind-mounts at
// /var/cache/melange: its layout, creation and ownership, locking, status and
// accounting, pruning, integrity verification, use marks, and the mount spec
// that maps each cache between the host and the guest.
//
// The layout (README.md, "Layout"):
//
//	DIR/gomodcache/   GOMODCACHE=/var/cache/melange/gomodcache
//	DIR/gocache/      GOCACHE=/var/cache/melange/gocache
//	DIR/.melcache/    tool state: lock, journal, last snapshot per ref, use marks
//
// Anything else in DIR belongs to other tools (apk files, melange's
// "sha256:" fetch cache) and is never touched. The caches are listed once,
// in the registry of CacheProfile (caches.go).
//
// The build can write all of DIR, .melcache included, while melcache may
// run as root: state is reached only through the verified state directory
// (OpenState, ReadState, WriteState in statedir.go), never through a link
// (docs/security.md, "The build controls the cache dir's content").
//
// In recipe mode (melange's docs/BUILD-CACHE.md, GOMODCACHE=/var/cache/melange)
// the whole of DIR is the module cache; melcache then manages the module cache
// only and keeps its state outside DIR, because `go clean -modcache` removes
// everything inside a module cache.
package mount
