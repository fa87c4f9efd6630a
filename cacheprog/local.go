package cacheprog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// LocalOptions configure ServeLocal.
type LocalOptions struct {
	// Remote is asked on a local miss; nil means local only.
	Remote Remote
	// Log receives request errors; nil discards them.
	Log *slog.Logger
}

// ServeLocal is `melcache cacheprog --dir DIR`: one GOCACHEPROG session on
// r and w (the go command's pipes) with a Store on gocacheDir
// (DIR/gocache, DIR made when missing), DiskPaths on the host. It returns what the session did,
// also when it failed.
func ServeLocal(ctx context.Context, gocacheDir string, r io.Reader, w io.Writer, o LocalOptions) (Report, error) {
	var stats Stats
	// DIR is the user's path (as for plain go's GOCACHE, made when missing);
	// OpenStore makes gocache/ inside it without following a link there.
	if err := os.MkdirAll(filepath.Dir(gocacheDir), gocachePerm); err != nil {
		return stats.Report(), fmt.Errorf("cacheprog: %w", err)
	}
	st, err := OpenStore(gocacheDir, StoreOptions{Remote: o.Remote, Stats: &stats})
	if err != nil {
		return stats.Report(), err
	}
	if a, ok := o.Remote.(interface{ attach(*Store) }); ok {
		a.attach(st) // where a snapshot remote keeps what it fetched alongside
	}
	srv := &Server{Backend: st, Stats: &stats, Log: o.Log}
	err = srv.Serve(ctx, r, w)
	if c, ok := o.Remote.(interface{ Close() }); ok {
		c.Close() // background prefetches end before the store closes
	}
	rep := stats.Report()
	if rr, ok := o.Remote.(interface{ report(*Report) }); ok {
		rr.report(&rep)
	}
	return rep, errors.Join(err, st.Close())
}
