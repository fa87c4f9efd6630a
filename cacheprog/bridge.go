package cacheprog

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"

	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// ForwardEnv names the socket of a forwarder started with no arguments:
// GOCACHEPROG is split on spaces and melange env-files cannot carry one,
// so the guest runs the binary bare and finds the socket here.
const ForwardEnv = "MELCACHE_CACHEPROG_FORWARD"

// Names in the state dir (DIR/.melcache/cacheprog/): the forwarder binary
// and the host's socket. Short, so the guest's socket path stays far below
// sun_path's 108 bytes.
const (
	bridgeDir     = "cacheprog"
	forwarderName = "melcache"
	socketName    = "sock"
	forwarderPerm = 0o755
)

// BridgeOptions configure StartBridge.
type BridgeOptions struct {
	// Forwarder is the host path of the binary the guest runs: a static
	// melcache for the guest's arch (CheckForwarder).
	Forwarder string
	// Arch is the guest's arch (melange's --arch).
	Arch string
	// Log receives session errors; nil discards them.
	Log *slog.Logger
	// Remote is asked on a local miss (RemoteFor: the lazy fetch of
	// build --cacheprog --pull); nil means local only.
	Remote Remote
}

// Bridge is the host side of `melcache build --cacheprog`: the forwarder
// placed in DIR/.melcache/cacheprog, a socket next to it, and a Store on
// DIR/gocache answering with guest paths.
type Bridge struct {
	// GuestProg and GuestSocket are the guest paths for GOCACHEPROG and
	// ForwardEnv.
	GuestProg, GuestSocket string

	stats  Stats
	store  *Store
	remote Remote
	ln     *Listener
	cancel context.CancelFunc
	done   chan error
}

// StartBridge places and checks the forwarder, opens the store and starts
// serving the socket. Stop ends it.
func StartBridge(ctx context.Context, l mount.Layout, o BridgeOptions) (*Bridge, error) {
	if l.Mode != mount.Split {
		return nil, errors.New("cacheprog: needs the split layout (DIR/gocache); recipe mode has no build cache")
	}
	if err := CheckForwarder(o.Forwarder, o.Arch); err != nil {
		return nil, err
	}
	if err := placeForwarder(l, o.Forwarder); err != nil {
		return nil, err
	}
	b := &Bridge{done: make(chan error, 1), remote: o.Remote}
	b.GuestProg, b.GuestSocket = GuestPaths(path.Join(mount.GuestRoot, mount.StateName))
	var err error
	b.store, err = OpenStore(l.CacheDir(mount.GoCache), StoreOptions{DiskDir: l.GuestPath(mount.GoCache), Stats: &b.stats, Remote: o.Remote})
	if err != nil {
		return nil, err
	}
	if a, ok := o.Remote.(interface{ attach(*Store) }); ok {
		a.attach(b.store)
	}
	b.ln, err = Listen(filepath.Join(l.State, bridgeDir), socketName)
	if err != nil {
		b.store.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	h := &Host{Backend: b.store, Stats: &b.stats, Log: o.Log}
	go func() { b.done <- h.Serve(sctx, b.ln) }()
	return b, nil
}

// Stop closes the socket, ends the sessions still open (their go commands
// are gone once melange has exited) and returns what the bridge served.
func (b *Bridge) Stop() (Report, error) {
	err := b.ln.Close()
	b.cancel()
	err = errors.Join(err, <-b.done)
	if c, ok := b.remote.(interface{ Close() }); ok {
		c.Close() // background prefetches end before the store closes
	}
	err = errors.Join(err, b.store.Close())
	rep := b.stats.Report()
	if rr, ok := b.remote.(interface{ report(*Report) }); ok {
		rr.report(&rep)
	}
	return rep, err
}

// GuestPaths are the forwarder's and the socket's paths given the state
// directory's path (as the guest sees it): what GOCACHEPROG and ForwardEnv
// are set to.
func GuestPaths(stateDir string) (prog, socket string) {
	return path.Join(stateDir, bridgeDir, forwarderName), path.Join(stateDir, bridgeDir, socketName)
}

// placeForwarder copies src to DIR/.melcache/cacheprog/melcache (replacing
// whatever the last build left there, never writing through a link) and
// checks that the file placed has src's digest: DIR is writable by the
// build, so nothing there is reused from an earlier one.
func placeForwarder(l mount.Layout, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("cacheprog forwarder: %w", err)
	}
	defer in.Close()
	root, err := l.OpenState(true)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := l.StateSubdir(root, bridgeDir, true); err != nil {
		return err
	}
	name := path.Join(bridgeDir, forwarderName)
	h := sha256.New()
	err = fsutil.WriteFileFuncIn(root, name, func(w io.Writer) error {
		_, err := io.Copy(io.MultiWriter(w, h), in)
		return err
	}, fsutil.WriteOptions{Perm: forwarderPerm, Sync: fsutil.SyncFile})
	if err != nil {
		return fmt.Errorf("cacheprog forwarder: %w", err)
	}
	want := h.Sum(nil)
	f, err := fsutil.OpenFileNoFollow(root, name, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("cacheprog forwarder: %w", err)
	}
	defer f.Close()
	h.Reset()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("cacheprog forwarder %s: %w", filepath.Join(l.State, name), err)
	}
	if got := h.Sum(nil); string(got) != string(want) {
		return fmt.Errorf("cacheprog forwarder %s: digest %x, want %x (replaced while placed)", filepath.Join(l.State, name), got, want)
	}
	return nil
}
