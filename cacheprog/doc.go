// Package cacheprog is melcache's GOCACHEPROG program: a server for the
// protocol of Go's cmd/go/internal/cacheprog (Go 1.24 and later) that keeps
// Go's build cache in a cache dir's gocache/ in Go's own layout (NN/ID-a,
// NN/ID-d), so that plain go, push, pull, verify, prune and use marks work
// on the same directory.
//
// Three ways to run it:
//
//   - locally: GOCACHEPROG="melcache cacheprog --dir DIR" (Serve on stdin and
//     stdout with a Store on DIR/gocache);
//   - inside melange: a forwarder in the guest (Forward) pipes the protocol to
//     a unix socket in DIR/.melcache, where the host (Listen, Host) serves it
//     with a Store whose DiskPaths are guest paths;
//   - with a Remote (later: the lazy fetch from a snapshot), which a Store
//     asks on a local miss.
//
// Everything under DIR is written by an untrusted build, and in the melange
// bridge every request comes from the guest. So every path is built from a
// validated ID (32 bytes, written as 64 lowercase hex digits), inside an
// os.Root on DIR/gocache, and no link there is followed: see
// docs/cacheprog.md and docs/security.md.
package cacheprog
