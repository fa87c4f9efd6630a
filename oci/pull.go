package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// Pull restores a snapshot from s into the caches of l (docs/format.md,
// "Restore"). ref is a tag, a "sha256:..." digest, or empty when only
// o.RestoreKeys are given. It holds the layout's lock exclusively and first
// completes or rolls back an interrupted restore.
func Pull(ctx context.Context, l mount.Layout, s Store, ref string, o Options) (_ *Result, err error) {
	// Paths and index names may be near PATH_MAX and an error may name
	// several: keep the message to a readable line.
	defer func() { err = fsutil.BoundedError(err) }()
	start := time.Now()
	log := o.log()
	snap, tag, how, err := Resolve(ctx, s, ref, o.RestoreKeys)
	if err != nil {
		return nil, err
	}
	if how != "tag" && how != "digest" {
		log.Info("restoring a fallback snapshot", "tag", tag, "matched", how)
	}
	if err := checkArch(snap); err != nil {
		log.Warn(err.Error())
	}
	if snap, err = selectCaches(l, snap, o); err != nil {
		return nil, err
	}
	// Like prepare, pull creates at most DIR itself, and only now that the
	// snapshot is fetched and checked; a pull that fails after creating it
	// removes it again (after the lock's release, deferred below), so a
	// failed pull leaves the filesystem as it was.
	undo := fsutil.BeforeCreate(l.Dir)
	created, err := makeCacheDir(l.Dir)
	if err != nil {
		return nil, err
	}
	if created {
		defer func() {
			if err != nil {
				_ = undo.Undo()
			}
		}()
	}
	if o.Lock != nil && !o.Lock.Covers(mount.Exclusive) {
		// A shared lock held by the caller cannot be upgraded: taking the
		// exclusive lock would wait on ourselves.
		return nil, fmt.Errorf("pull into %s needs the exclusive lock; the caller holds it %s", l.Dir, o.Lock.Mode())
	}
	lk := o.Lock
	if !lk.Covers(mount.Exclusive) {
		if lk, err = l.Lock(ctx, mount.Exclusive, o.LockOptions); err != nil {
			return nil, err
		}
		defer lk.Unlock()
	}
	// Held through the restore: recovery reuses the lock.
	if did, err := RecoverInterrupted(ctx, l, RecoverOptions{Lock: lk}); err != nil {
		return nil, err
	} else if did != "" {
		log.Warn(did)
	}
	res := &Result{Direction: "pull", Store: s.String(), Tag: tag, Digest: snap.Digest.String(), Resolved: how,
		Files: snap.Config.Files, Bytes: snap.Config.Size,
		MetaBytes: snap.ManifestBytes + snap.ConfigBytes + snap.IndexBytes}
	if len(o.Only) > 0 {
		res.Files, res.Bytes = countFiles(snap.Index)
	}
	if err := restore(ctx, l, s, snap, o, res); err != nil {
		return nil, err
	}
	log.Debug("restored snapshot", "store", s.String(), "tag", tag, "digest", res.Digest, "layers", res.Layers, "files written", res.FilesWritten)
	return finish(l, s, tag, restoredCaches(l, snap, o), res, start, "pull")
}

// cacheDirPerm is the mode of a cache dir that pull creates, as prepare's.
const cacheDirPerm = 0o755

// makeCacheDir creates dir, one level only: a missing parent is a mistyped
// path, refused as prepare refuses it. created says whether pull made it.
func makeCacheDir(dir string) (created bool, err error) {
	err = os.Mkdir(dir, cacheDirPerm)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() {
			return false, fmt.Errorf("cache directory %s: not a directory", dir)
		}
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("cache directory %s: its parent %s does not exist (pull creates only the cache directory itself)", dir, filepath.Dir(dir))
	}
	return false, fmt.Errorf("cache directory %s: %w", dir, err)
}

func checkArch(snap *Snapshot) error {
	if snap.Config.Arch != HostArch() {
		return fmt.Errorf("snapshot was built on %s, this host is %s: GOCACHE entries will not match", snap.Config.Arch, HostArch())
	}
	return nil
}

// Resolve finds the snapshot for ref ("" allowed), falling back to the
// newest snapshot (by its created annotation) among tags starting with each
// restore-key prefix in turn. It returns the snapshot, the tag it came from
// ("" for a digest) and how it was found: "tag", "digest" or
// "restore-key PREFIX".
func Resolve(ctx context.Context, s Store, ref string, restoreKeys []string) (*Snapshot, string, string, error) {
	if ref != "" {
		snap, err := FetchSnapshot(ctx, s, ref)
		if err == nil {
			if strings.HasPrefix(ref, "sha256:") {
				return snap, "", "digest", nil
			}
			return snap, ref, "tag", nil
		}
		if !isNotFound(err) || len(restoreKeys) == 0 {
			return nil, "", "", err
		}
	}
	if len(restoreKeys) == 0 {
		return nil, "", "", errors.New("no snapshot reference and no --restore-keys")
	}
	tags, err := s.Tags(ctx)
	if err != nil {
		return nil, "", "", nameStore(s, "listing tags of", err)
	}
	for _, prefix := range restoreKeys {
		var bestTag string
		var bestTime time.Time
		for _, t := range tags {
			if !strings.HasPrefix(t, prefix) {
				continue
			}
			created, err := createdOf(ctx, s, t)
			if err != nil {
				continue // not a snapshot, or unreadable: not a candidate
			}
			if bestTag == "" || created.After(bestTime) || (created.Equal(bestTime) && t > bestTag) {
				bestTag, bestTime = t, created
			}
		}
		if bestTag != "" {
			snap, err := FetchSnapshot(ctx, s, bestTag)
			if err != nil {
				return nil, "", "", err
			}
			return snap, bestTag, "restore-key " + prefix, nil
		}
	}
	what := fmt.Sprintf("no tag matches --restore-keys %s", strings.Join(restoreKeys, " "))
	if ref != "" {
		what = fmt.Sprintf("tag %s not found and %s", ref, what)
	}
	return nil, "", "", fmt.Errorf("%s: %s: %w", s, what, ErrNotFound)
}

// createdOf reads a tag's manifest and returns its created annotation.
func createdOf(ctx context.Context, s Store, tag string) (time.Time, error) {
	mt, mb, _, err := s.GetManifest(ctx, tag)
	if err != nil {
		return time.Time{}, err
	}
	m, err := parseManifest(mt, mb)
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339, m.Annotations[AnnotationCreated])
}

// manifestOf parses a manifest without fetching blobs.
func manifestOf(ctx context.Context, s Store, tagOrDigest string) (*v1.Manifest, v1.Hash, error) {
	mt, mb, d, err := s.GetManifest(ctx, tagOrDigest)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	m, err := parseManifest(mt, mb)
	if err != nil {
		var raw v1.Manifest
		if json.Unmarshal(mb, &raw) == nil {
			return nil, d, fmt.Errorf("%s %s: %w", s, tagOrDigest, err)
		}
		return nil, d, err
	}
	return m, d, nil
}
