package cacheprog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// OpenRemote is `melcache cacheprog REF`'s remote: the snapshot ref names
// in s (a tag or "sha256:…"), else the newest matching one of restoreKeys
// (oci.Resolve, as pull finds it). A snapshot that cannot be read lazily
// (format 1, or a store without range reads) is pulled whole into l's
// gocache first (`pull --only gocache`, merged), with a log line, and
// OpenRemote returns a nil Remote: the session is then local. So is it for
// a snapshot that holds no gocache.
func OpenRemote(ctx context.Context, l mount.Layout, s oci.Store, ref string, restoreKeys []string, log *slog.Logger) (Remote, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	snap, tag, how, err := oci.Resolve(ctx, s, ref, restoreKeys)
	if err != nil {
		return nil, err
	}
	log.Info("cacheprog: lazy fetch from snapshot", "store", s.String(), "tag", tag, "digest", snap.Digest.String(), "found", how)
	return RemoteFor(ctx, l, s, snap, log)
}

// RemoteFor is OpenRemote for a snapshot already resolved (and verified by
// oci.FetchSnapshot).
func RemoteFor(ctx context.Context, l mount.Layout, s oci.Store, snap *oci.Snapshot, log *slog.Logger) (Remote, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !snap.Config.Holds(mount.GoCache) {
		log.Warn("cacheprog: the snapshot holds no gocache; serving the local cache only", "digest", snap.Digest.String())
		return nil, nil
	}
	r, err := NewSnapshotRemote(s, snap, log)
	if err == nil {
		return r, nil
	} else if !errors.Is(err, oci.ErrNoPositions) {
		return nil, err
	}
	log.Info("cacheprog: the snapshot cannot be read file by file (format 1); pulling its gocache before serving", "digest", snap.Digest.String())
	_, err = oci.Pull(ctx, l, s, snap.Digest.String(), oci.Options{Only: []mount.Cache{mount.GoCache}, Log: log})
	if err != nil {
		return nil, fmt.Errorf("cacheprog: pulling %s: %w", snap.Digest, err)
	}
	return nil, nil
}
