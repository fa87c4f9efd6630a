package cacheprog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// socketUmask makes the socket 0700 (see Listen).
const socketUmask = 0o077

// Listener is the host's socket in a directory the build may write
// (DIR/.melcache/cacheprog).
type Listener struct {
	*net.UnixListener
	dirfd   int
	name    string
	display string
}

// Listen makes the unix socket name in dir and listens on it. dir must be
// a real directory (a link at its last element is refused) and is held
// open: the socket is bound through /proc/self/fd, so a link swapped in
// for dir afterwards cannot move it elsewhere, and the path stays short
// whatever DIR is (sun_path holds 108 bytes). An entry already at name
// (a stale socket, or anything the build planted) is unlinked, never
// followed. The socket is 0700: only the user who runs this process may
// connect, which is the user melange runs as, and so the host user of the
// guest's processes (bubblewrap maps the build user to it). It is not
// given to the cache's owner: when root runs melange with caches given to
// another user (prepare --owner), the guest is still root on the host.
func Listen(dir, name string) (*Listener, error) {
	display := filepath.Join(dir, name)
	if name != filepath.Base(name) || name == "." || name == ".." {
		return nil, fmt.Errorf("cacheprog socket %s: not a plain name", display)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cacheprog socket %s: opening %s: %w (a link there is not followed)", display, dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.Unlinkat(fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("cacheprog socket %s: removing what is there: %w", display, err)
	}
	addr := &net.UnixAddr{Net: "unix", Name: fmt.Sprintf("/proc/self/fd/%d/%s", fd, name)}
	// Connecting needs write permission on the socket: bind it 0700, so
	// only its owner may. The umask is the only way to
	// set the mode without a chmod by name, which a link swapped in could
	// redirect; it is process-wide, so for this instant other files get a
	// stricter mode, never a looser one.
	old := unix.Umask(socketUmask)
	ln, err := net.ListenUnix("unix", addr)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("cacheprog socket %s: %w", display, err)
	}
	ln.SetUnlinkOnClose(false) // the /proc path is only valid while fd is open
	ok = true
	return &Listener{UnixListener: ln, dirfd: fd, name: name, display: display}, nil
}

// Path is the socket's host path.
func (l *Listener) Path() string { return l.display }

// Close stops listening and removes the socket.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	_ = unix.Unlinkat(l.dirfd, l.name, 0)
	unix.Close(l.dirfd)
	return err
}

// Host serves every connection on a listener with one Backend: each is
// one go command's GOCACHEPROG session through a forwarder.
type Host struct {
	Backend Backend
	Stats   *Stats
	Log     *slog.Logger
}

// Serve accepts connections until ln is closed, then waits for the
// sessions in progress to end (they end when the guest's go commands
// close them, or when ctx is done).
func (h *Host) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	srv := &Server{Backend: h.Backend, Stats: h.Stats, Log: h.Log}
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		} else if err != nil {
			return fmt.Errorf("cacheprog host: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			if err := srv.Serve(ctx, c, c); err != nil && h.Log != nil {
				h.Log.Warn("cacheprog session ended", "err", err)
			}
		}()
	}
}
