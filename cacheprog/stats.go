package cacheprog

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/internal/units"
)

// Stats counts one server's work; the zero value is ready. It is safe for
// concurrent use. Report reads it.
type Stats struct {
	gets, hits, misses, puts, errors atomic.Int64
	bytesIn, bytesOut                atomic.Int64
	remoteFetches, remoteBytes       atomic.Int64
	remoteWaitNanos                  atomic.Int64
}

// Report is what a server did, printed on close and written as JSON for
// melcache build.
type Report struct {
	Gets   int64 `json:"gets"`
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	Puts   int64 `json:"puts"`
	// Errors counts requests answered with an error.
	Errors int64 `json:"errors"`
	// BytesIn are put bodies received; BytesOut the sizes of the objects
	// hits pointed the go command at.
	BytesIn  int64 `json:"bytesIn"`
	BytesOut int64 `json:"bytesOut"`
	// RemoteFetches, RemoteBytes and RemoteWaitSeconds are the Remote's
	// share: lookups, bytes fetched, and time spent waiting on it.
	RemoteFetches     int64   `json:"remoteFetches"`
	RemoteBytes       int64   `json:"remoteBytes"`
	RemoteWaitSeconds float64 `json:"remoteWaitSeconds"`
	// RemoteRequests and RemoteDownloaded are a snapshot remote's range
	// requests and the compressed bytes they moved (whole frames, neighbours
	// included); RemoteIndexBytes the manifest, config and index it read
	// first.
	RemoteRequests   int64 `json:"remoteRequests"`
	RemoteDownloaded int64 `json:"remoteDownloaded"`
	RemoteIndexBytes int64 `json:"remoteIndexBytes"`
}

func (s *Stats) get(hit bool, size int64) {
	s.gets.Add(1)
	if hit {
		s.hits.Add(1)
		s.bytesOut.Add(size)
	} else {
		s.misses.Add(1)
	}
}

func (s *Stats) put(size int64) {
	s.puts.Add(1)
	s.bytesIn.Add(size)
}

func (s *Stats) remoteWait(d time.Duration, size int64) {
	s.remoteFetches.Add(1)
	s.remoteBytes.Add(size)
	s.remoteWaitNanos.Add(int64(d))
}

// Report returns the counts so far.
func (s *Stats) Report() Report {
	return Report{
		Gets: s.gets.Load(), Hits: s.hits.Load(), Misses: s.misses.Load(), Puts: s.puts.Load(),
		Errors: s.errors.Load(), BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		RemoteFetches: s.remoteFetches.Load(), RemoteBytes: s.remoteBytes.Load(),
		RemoteWaitSeconds: time.Duration(s.remoteWaitNanos.Load()).Seconds(),
	}
}

// String is the one line printed to stderr on close.
func (r Report) String() string {
	s := fmt.Sprintf("melcache cacheprog: %d gets, %d hits, %d misses, %d puts, %d errors; %s in, %s out; remote: %d fetches, %s, %.2fs waiting",
		r.Gets, r.Hits, r.Misses, r.Puts, r.Errors, units.FormatSize(r.BytesIn), units.FormatSize(r.BytesOut),
		r.RemoteFetches, units.FormatSize(r.RemoteBytes), r.RemoteWaitSeconds)
	if r.RemoteRequests > 0 || r.RemoteIndexBytes > 0 {
		s += fmt.Sprintf(" (%d range requests, %s downloaded, %s index)", r.RemoteRequests,
			units.FormatSize(r.RemoteDownloaded), units.FormatSize(r.RemoteIndexBytes))
	}
	return s
}

// WriteJSON writes the report to path atomically (fsync'd: melcache build
// reads it after the go command that wrote it has gone).
func (r Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cacheprog stats %s: %w", path, err)
	}
	return fsutil.WriteFile(path, append(b, '\n'), fsutil.WriteOptions{Sync: fsutil.SyncFile})
}
