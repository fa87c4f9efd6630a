package cacheprog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// SnapshotRemote is the lazy fetch (issue 14): a Remote that serves a local
// miss from a version 2 snapshot, reading only the zstd frames that hold
// the action's -a entry and its -d output (oci.FileReader).
//
// Batching: every frame fetched is used whole. Its other -a entries are
// kept in memory (175 bytes each) and its other -d outputs are written to
// the Store, so a later get whose entries lie in a frame already fetched
// needs no request, and no frame is downloaded twice except when a file
// that spans frames outlives the frame cache. A build's objects are spread
// over the whole layer (entries are sorted by hash), so a build that needs
// much of a snapshot ends up fetching each frame once: the bytes of a full
// pull, in parallel requests, instead of more. Concurrent gets for the
// same frame share one request.
type SnapshotRemote struct {
	r     *oci.FileReader
	store *Store
	log   *slog.Logger
	meta  int64 // manifest, config and index bytes

	mu          sync.Mutex
	actions     map[string][]byte // -a contents of fetched frames, by path
	prefetching map[int]bool      // layers being prefetched
	waited      atomic.Int64      // ns the gets spent in Fetch

	// aheadMu guards waiting: the actions of fetched frames whose output
	// has not been kept yet, by output (written ahead when it is).
	aheadMu sync.Mutex
	waiting map[ID][]ID

	ctx    context.Context // ends the prefetches (Close)
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// prefetchShare is the share of a layer's frames a session must have
// fetched on demand before the rest of the layer is fetched in the
// background: a build that needs half of a snapshot's frames will need
// most of the rest, and prefetching them costs at most as many bytes
// again, never more than the pull.
const prefetchShare = 0.5

// prefetchWorkers is how many frames a prefetch fetches at once: enough
// to overlap one frame's transfer with another's decompression, few
// enough to leave the demand gets (which share the same frames) ahead.
const prefetchWorkers = 2

// NewSnapshotRemote serves misses from snap (fetched from s). It fails with
// oci.ErrNoPositions for a version 1 snapshot or a store without range
// reads: the caller pulls the snapshot instead. log may be nil.
func NewSnapshotRemote(s oci.Store, snap *oci.Snapshot, log *slog.Logger) (*SnapshotRemote, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &SnapshotRemote{log: log, actions: map[string][]byte{}, prefetching: map[int]bool{}, waiting: map[ID][]ID{},
		meta: snap.ManifestBytes + snap.ConfigBytes + snap.IndexBytes}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	r, err := oci.NewFileReader(s, snap, oci.FileReaderOptions{Neighbour: m.neighbour})
	if err != nil {
		return nil, err
	}
	m.r = r
	return m, nil
}

// Close stops the background prefetches and waits for them: the session
// is over, and its Store closes next.
func (m *SnapshotRemote) Close() {
	m.cancel()
	m.wg.Wait()
	m.r.Wait()
}

// maybePrefetch starts the background fetch of the rest of layer i
// (once per layer) when prefetchShare of its frames were fetched, or when
// the gets have waited as long as fetching the rest would take at the
// rate seen so far. The second rule bounds the wait: a build that needs
// many frames, one or two gets at a time (the go command asks as it runs
// actions), would otherwise wait on one frame per miss where a pull
// streams them all; like renting skis until the rent paid equals the
// price, it never waits more than about twice what the pull of the layer
// would have cost, and a build that needs a few frames never prefetches.
func (m *SnapshotRemote) maybePrefetch(i int) {
	done, total, rest := m.r.Fetched(i)
	if done == total {
		return
	}
	if float64(done) < prefetchShare*float64(total) && time.Duration(m.waited.Load()) < m.r.FetchTime(rest) {
		return
	}
	m.mu.Lock()
	started := m.prefetching[i]
	m.prefetching[i] = true
	m.mu.Unlock()
	if started {
		return
	}
	m.log.Debug("cacheprog: prefetching the rest of a layer", "frames fetched", done, "of", total)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.r.Prefetch(m.ctx, i, prefetchWorkers); err != nil && m.ctx.Err() == nil {
			m.log.Debug("cacheprog: prefetch stopped; gets fetch what they need", "err", err)
		}
	}()
}

// attach is called by ServeLocal with the Store the remote fills.
func (m *SnapshotRemote) attach(st *Store) { m.store = st }

// report adds the remote's transfer counts to a session's report.
func (m *SnapshotRemote) report(r *Report) {
	r.RemoteRequests, r.RemoteDownloaded, r.RemoteIndexBytes = m.r.Fetches(), m.r.Bytes(), m.meta
}

// neighbour keeps a GOCACHE file that arrived in a fetched frame: a -d in
// the Store, an -a in memory and, once its output is in the Store, written
// ahead there too (writeAhead). Only names Go writes (NN/ID-a, NN/ID-d
// with NN the ID's first byte) are kept; the content is already verified.
// After Close nothing more is kept: the session is over.
func (m *SnapshotRemote) neighbour(e *oci.Entry, b []byte) {
	if e.Cache != mount.GoCache || m.ctx.Err() != nil {
		return
	}
	id, kind, ok := parseEntryName(e.Path)
	if !ok {
		return
	}
	switch kind {
	case "a":
		m.mu.Lock()
		m.actions[e.Path] = bytes.Clone(b)
		m.mu.Unlock()
		m.writeAhead(id, b)
	case "d":
		if m.store == nil {
			return
		}
		if err := m.store.PutOutput(id, b); err != nil {
			m.log.Debug("cacheprog: keeping a fetched output", "output", id.String(), "err", err)
			return
		}
		m.aheadMu.Lock()
		actions := m.waiting[id]
		delete(m.waiting, id)
		m.aheadMu.Unlock()
		for _, a := range actions {
			m.storeAhead(a, id, int64(len(b)))
		}
	}
}

// writeAhead stores the action entry b of a fetched frame before any get
// asks for it, so that the get the build makes next is a local hit,
// answered in the read loop: a get served from a frame already fetched
// otherwise costs a goroutine, the remote path and the entry's write while
// the go command waits (about a millisecond each under a build's load, on
// ~170 of the 258 gets of the lazy benchmark). The entry gets Fetch's
// checks (Go's line naming this action, an output the snapshot holds at
// that size); it is written once its output is in the Store, which for
// an entry packed before its outputs (build order) is when the -d
// arrives.
func (m *SnapshotRemote) writeAhead(action ID, b []byte) {
	if m.store == nil {
		return
	}
	entry, err := mount.ParseActionEntry(b, action.String())
	if err != nil {
		return // Fetch refuses it, with a log line, if a get asks
	}
	out, err := ParseHexID(entry.Out)
	if err != nil {
		return
	}
	if de, ok := m.r.Lookup(mount.GoCache, out.name("d")); !ok || de.Size != entry.Size {
		return
	}
	// Under aheadMu: a -d kept after this check finds the action waiting.
	m.aheadMu.Lock()
	have := m.hasOutput(out, entry.Size)
	if !have {
		m.waiting[out] = append(m.waiting[out], action)
	}
	m.aheadMu.Unlock()
	if have {
		m.storeAhead(action, out, entry.Size)
	}
}

func (m *SnapshotRemote) storeAhead(action, out ID, size int64) {
	if err := m.store.storeAhead(action, Fetched{OutputID: out, Size: size}); err != nil {
		m.log.Debug("cacheprog: writing a fetched action entry ahead", "action", action.String(), "err", err)
	}
}

// parseEntryName parses "NN/ID-a" or "NN/ID-d" as Go names entries.
func parseEntryName(p string) (ID, string, bool) {
	stem, kind, ok := strings.Cut(p, "-")
	if !ok || (kind != "a" && kind != "d") || len(stem) < 3 {
		return ID{}, "", false
	}
	id, err := ParseHexID(stem[3:])
	if err != nil || id.name(kind) != p {
		return ID{}, "", false
	}
	return id, kind, true
}

// Fetch implements Remote: the snapshot's -a entry for action, then the
// -d output it names, each checked against the index (size, SHA-256; the
// -d's name is its SHA-256), the -a checked as Go's format naming this
// action, and the -d's size against the -a's. Anything that does not
// match is a miss (logged): nothing is stored.
func (m *SnapshotRemote) Fetch(ctx context.Context, action ID) (Fetched, error) {
	t0 := time.Now()
	defer func() { m.waited.Add(int64(time.Since(t0))) }()
	aName := action.name("a")
	ae, ok := m.r.Lookup(mount.GoCache, aName)
	if !ok {
		return Fetched{}, ErrNotFound
	}
	m.mu.Lock()
	b, ok := m.actions[aName]
	m.mu.Unlock()
	if !ok {
		var err error
		if b, err = m.r.ReadFile(ctx, ae); err != nil {
			return Fetched{}, m.readErr(action, err)
		}
		m.maybePrefetch(ae.Layer)
	}
	entry, err := mount.ParseActionEntry(b, action.String())
	if err != nil {
		return Fetched{}, m.refuse(action, fmt.Errorf("its -a entry: %w", err))
	}
	out, err := ParseHexID(entry.Out)
	if err != nil {
		return Fetched{}, m.refuse(action, fmt.Errorf("its -a entry: %w", err))
	}
	de, ok := m.r.Lookup(mount.GoCache, out.name("d"))
	if !ok || de.Size != entry.Size {
		return Fetched{}, m.refuse(action, fmt.Errorf("the snapshot lacks output %s of %d bytes", out, entry.Size))
	}
	if m.hasOutput(out, de.Size) {
		return Fetched{OutputID: out, Size: de.Size}, nil // kept from an earlier frame
	}
	body, err := m.r.ReadFile(ctx, de)
	if err != nil {
		return Fetched{}, m.readErr(action, err)
	}
	m.maybePrefetch(de.Layer)
	return Fetched{OutputID: out, Size: de.Size, Body: io.NopCloser(bytes.NewReader(body))}, nil
}

// hasOutput reports an output an earlier frame left in the Store.
func (m *SnapshotRemote) hasOutput(out ID, size int64) bool {
	if m.store == nil {
		return false
	}
	return m.store.hasOutput(out, size)
}

// refuse turns content that does not match the snapshot into a miss (the
// go command rebuilds; nothing is stored) and logs it.
func (m *SnapshotRemote) refuse(action ID, err error) error {
	m.log.Warn("cacheprog: snapshot entry refused; a miss", "action", action.String(), "err", err)
	return fmt.Errorf("%w (%v)", ErrNotFound, err)
}

// readErr is refuse for content that failed verification; a transfer
// failure stays an error, which the go command reports.
func (m *SnapshotRemote) readErr(action ID, err error) error {
	var ve *oci.VerifyError
	if errors.As(err, &ve) {
		return m.refuse(action, err)
	}
	return err
}
