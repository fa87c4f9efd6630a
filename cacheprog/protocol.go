package cacheprog

import "time"

// The wire types of Go's cmd/go/internal/cacheprog, which is internal to
// the go command and so cannot be imported. Field names are the JSON keys.

// Cmd is a request's command.
type Cmd string

// The commands melcache knows and declares in its handshake.
const (
	CmdGet   Cmd = "get"
	CmdPut   Cmd = "put"
	CmdClose Cmd = "close"
)

// knownCommands is the handshake's KnownCommands: the go command sends
// only what the program declares.
var knownCommands = []Cmd{CmdGet, CmdPut, CmdClose}

// Request is one line the go command writes. A put with BodySize > 0 is
// followed by the body as a base64 JSON string on the next line.
type Request struct {
	ID       int64
	Command  Cmd
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
}

// Response answers one Request (same ID), in any order; the first
// response (ID 0) is the handshake with KnownCommands.
type Response struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []Cmd      `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}
