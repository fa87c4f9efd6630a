package cacheprog

import (
	"context"
	"errors"
	"io"
	"time"
)

// Object is a cache hit or a stored put: the output, its size, when it was
// put, and DiskPath, the file the go command reads (a path as the go
// command sees it: a guest path in the melange bridge).
type Object struct {
	OutputID ID
	Size     int64
	Time     time.Time
	DiskPath string
}

// Backend answers the go command's gets and puts. Store is the one
// implementation; Serve takes the interface so that protocol tests can
// control the order of answers.
type Backend interface {
	// Get returns the object stored under action, or ok false on a miss.
	// An error is a failure to look (the go command reports it), not a
	// miss.
	Get(ctx context.Context, action ID) (obj Object, ok bool, err error)
	// Put stores body (exactly size bytes whose SHA-256 is output) under
	// action.
	Put(ctx context.Context, action, output ID, body io.Reader, size int64) (Object, error)
}

// ErrNotFound is what a Remote returns for an action it does not have.
var ErrNotFound = errors.New("not in the remote cache")

// Remote is where a Store looks on a local miss: the lazy fetch from a
// snapshot (issue 14). nil means local only.
type Remote interface {
	// Fetch returns the action's output, or ErrNotFound. The Store checks
	// the body against OutputID and Size before it keeps anything.
	Fetch(ctx context.Context, action ID) (Fetched, error)
}

// Fetched is an object a Remote found: Body has Size bytes whose SHA-256
// is OutputID. The Store closes Body. A nil Body says the Remote already
// put the output in the Store (Store.PutOutput): only the action entry is
// written.
type Fetched struct {
	OutputID ID
	Size     int64
	Body     io.ReadCloser
}
