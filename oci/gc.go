package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// GCOptions say which snapshots GC keeps. A snapshot is kept when any rule
// keeps it (as restic's and borg's keep rules combine): with KeepLast 3 and
// MaxAge 720h, the 3 newest stay whatever their age, and so does every
// snapshot younger than 30 days. At least one rule must be set, so a bare
// gc never empties a store.
type GCOptions struct {
	// KeepLast keeps the N newest snapshots (by the created annotation;
	// tags pointing at one manifest count once). 0: no count rule.
	KeepLast int
	// MaxAge keeps snapshots created less than MaxAge ago. 0: no age rule.
	MaxAge time.Duration
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// BlobGrace protects unreferenced layout blobs younger than this that
	// no deleted snapshot referenced (see DefaultBlobGrace); 0 means
	// DefaultBlobGrace.
	BlobGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// MinMaxAge is the shortest MaxAge GC accepts as its only rule. A
// snapshot's created time is when its build pushed it, and builds push
// every few minutes to hours: an age rule shorter than an hour keeps
// nothing a CI fleet produces (with 1ns it keeps nothing at all), so alone
// it is the "remove everything" the keep rules exist to prevent. Together
// with KeepLast, which always keeps something, any MaxAge is fine.
const MinMaxAge = time.Hour

// DefaultBlobGrace is how old an unreferenced layout blob must be before GC
// removes it when no snapshot GC deleted referenced it: a push writes its
// blobs before its manifest, so a young orphan may belong to a push still
// running (the same rule as git gc's prune expiry). Blobs of the snapshots GC
// itself deletes are removed at once.
const DefaultBlobGrace = time.Hour

// GCSnapshot is one snapshot (one manifest) GC considered.
type GCSnapshot struct {
	// Tags are the tags pointing at the manifest; a registry or layout
	// delete removes them together.
	Tags    []string  `json:"tags"`
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
	// Reason says why it was kept or deleted.
	Reason string `json:"reason"`
	// Blobs counts the snapshot's blobs (config, index, data layers);
	// SharedBlobs those of a deleted snapshot that kept snapshots still
	// list: they stay in the store.
	Blobs       int `json:"blobs"`
	SharedBlobs int `json:"sharedBlobs,omitempty"`
}

// GCResult says what GC deleted and kept.
type GCResult struct {
	Store  string `json:"store"`
	DryRun bool   `json:"dryRun"`
	// Deleted and Kept are newest first.
	Deleted []GCSnapshot `json:"deleted"`
	Kept    []GCSnapshot `json:"kept"`
	// Skipped lists tags that are not melcache snapshots: never touched.
	Skipped []GCSnapshot `json:"skipped,omitempty"`
	// Blobs and BlobBytes count unreferenced blobs removed from an OCI
	// layout (would be removed, in a dry run). Registries reclaim blobs
	// with their own garbage collection.
	Blobs     int   `json:"blobs"`
	BlobBytes int64 `json:"blobBytes"`
	// BlobsNote says what happens to a registry's blobs.
	BlobsNote string `json:"blobsNote,omitempty"`
}

// GC deletes the snapshots of s that no keep rule keeps, oldest first, and,
// in an OCI layout (oci:PATH or the embedded store), removes the blobs no
// remaining manifest references.
//
// Deleting a snapshot never breaks a kept one: a snapshot's manifest lists
// every layer it restores from, the base layers it kept included
// (docs/format.md, "Deltas"), and the base annotation is history only. The
// layers a deleted snapshot shares with kept ones stay (a registry's garbage
// collection and the layout collection below both keep every blob a
// remaining manifest lists); GC reports how many. A manifest is deleted with
// all of its tags, so a manifest any kept tag points at is kept. A builder
// whose recorded delta base was deleted pushes a full snapshot next time.
//
// A registry that refuses deletes gives an error wrapping
// ErrDeleteUnsupported whose text names that registry's own retention
// setting (RetentionHint).
func GC(ctx context.Context, s Store, o GCOptions) (*GCResult, error) {
	if o.KeepLast < 0 || o.MaxAge < 0 {
		return nil, errors.New("gc: --keep-last and --max-age must not be negative")
	}
	if o.KeepLast == 0 && o.MaxAge == 0 {
		return nil, errors.New("gc: give --keep-last N, --max-age DURATION or both: with no rule every snapshot would go")
	}
	if o.KeepLast == 0 && o.MaxAge < MinMaxAge {
		return nil, fmt.Errorf("gc: --max-age %v alone removes every snapshot (snapshots are pushed more than that apart); give at least %v, or add --keep-last N", o.MaxAge, MinMaxAge)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	res := &GCResult{Store: s.String(), DryRun: o.DryRun, Deleted: []GCSnapshot{}, Kept: []GCSnapshot{}}

	snaps, layers, err := gcInventory(ctx, s, res)
	if err != nil {
		return nil, err
	}
	t := now()
	deleted := gcJudge(snaps, layers, o, t, res)
	// Oldest first: an interrupted gc has removed the least useful ones.
	for i := len(deleted) - 1; i >= 0; i-- {
		g := deleted[i]
		if !o.DryRun {
			d, err := v1.NewHash(g.Digest)
			if err != nil {
				return nil, fmt.Errorf("gc: %s: %w", g.Digest, err)
			}
			if err := s.DeleteManifest(ctx, d); err != nil {
				if errors.Is(err, ErrDeleteUnsupported) {
					return res, fmt.Errorf("%w; %s", err, RetentionHint(s.String()))
				}
				if !errors.Is(err, ErrNotFound) { // gone already: fine
					return res, fmt.Errorf("gc: delete %s (%s): %w", g.Digest, strings.Join(g.Tags, ", "), err)
				}
			}
			log.Debug("deleted snapshot", "tags", g.Tags, "digest", g.Digest)
		}
		res.Deleted = append([]GCSnapshot{*g}, res.Deleted...)
	}

	if ls, ok := s.(*LayoutStore); ok {
		garbage := map[v1.Hash]bool{}
		for _, g := range deleted {
			if d, err := v1.NewHash(g.Digest); err == nil {
				garbage[d] = true
			}
			for _, d := range layers[g.Digest] {
				garbage[d] = true
			}
		}
		grace := o.BlobGrace
		if grace <= 0 {
			grace = DefaultBlobGrace
		}
		n, b, err := ls.RemoveUnreferencedBlobs(ctx, BlobGCOptions{Garbage: garbage, OlderThan: t.Add(-grace), DryRun: o.DryRun,
			// In a dry run the deleted manifests are still in index.json.
			AssumeDeleted: dryRunDeleted(o.DryRun, deleted)})
		if err != nil {
			return res, err
		}
		res.Blobs, res.BlobBytes = n, b
	} else {
		res.BlobsNote = "the registry frees the blobs of deleted snapshots with its own garbage collection (distribution: registry garbage-collect)"
	}
	return res, nil
}

func dryRunDeleted(dry bool, deleted []*GCSnapshot) map[v1.Hash]bool {
	if !dry {
		return nil
	}
	m := map[v1.Hash]bool{}
	for _, g := range deleted {
		if d, err := v1.NewHash(g.Digest); err == nil {
			m[d] = true
		}
	}
	return m
}

// gcJudge applies o's rules to snaps (newest first) at time t: the kept
// ones go to res.Kept with the reason, and the ones to delete are returned
// with theirs and the count of blobs they share with a kept snapshot.
func gcJudge(snaps []*GCSnapshot, layers map[string][]v1.Hash, o GCOptions, t time.Time, res *GCResult) []*GCSnapshot {
	var deleted []*GCSnapshot
	keptLayers := map[v1.Hash]bool{}
	for rank, g := range snaps {
		age := t.Sub(g.Created)
		var why []string
		if o.KeepLast > 0 && rank < o.KeepLast {
			why = append(why, fmt.Sprintf("one of the %d newest", o.KeepLast))
		}
		if o.MaxAge > 0 && age < o.MaxAge {
			why = append(why, fmt.Sprintf("younger than %s", o.MaxAge))
		}
		if len(why) > 0 {
			g.Reason = strings.Join(why, ", ")
			res.Kept = append(res.Kept, *g)
			for _, d := range layers[g.Digest] {
				keptLayers[d] = true
			}
			continue
		}
		why = nil
		if o.KeepLast > 0 {
			why = append(why, fmt.Sprintf("not among the %d newest", o.KeepLast))
		}
		if o.MaxAge > 0 {
			why = append(why, fmt.Sprintf("older than %s", o.MaxAge))
		}
		g.Reason = strings.Join(why, ", ")
		deleted = append(deleted, g)
	}
	for _, g := range deleted {
		for _, d := range layers[g.Digest] {
			if keptLayers[d] {
				g.SharedBlobs++
			}
		}
	}
	return deleted
}

// gcInventory reads every tag's manifest and groups tags by manifest,
// newest first (ties by tag name, so the order is stable). Tags that are
// not melcache snapshots go to res.Skipped.
func gcInventory(ctx context.Context, s Store, res *GCResult) ([]*GCSnapshot, map[string][]v1.Hash, error) {
	tags, err := s.Tags(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: list tags: %w", s, err)
	}
	byDigest := map[string]*GCSnapshot{}
	layers := map[string][]v1.Hash{}
	var out []*GCSnapshot
	for _, tag := range tags {
		m, d, err := manifestOf(ctx, s, tag)
		if err != nil {
			if isNotFound(err) && d == (v1.Hash{}) {
				continue // deleted meanwhile
			}
			res.Skipped = append(res.Skipped, GCSnapshot{Tags: []string{tag}, Digest: d.String(), Reason: "not a melcache snapshot: " + err.Error()})
			continue
		}
		if g := byDigest[d.String()]; g != nil {
			g.Tags = append(g.Tags, tag)
			continue
		}
		created, err := time.Parse(time.RFC3339, m.Annotations[AnnotationCreated])
		if err != nil {
			res.Skipped = append(res.Skipped, GCSnapshot{Tags: []string{tag}, Digest: d.String(), Reason: "no valid " + AnnotationCreated + " annotation"})
			continue
		}
		g := &GCSnapshot{Tags: []string{tag}, Digest: d.String(), Created: created, Blobs: len(m.Layers) + 1}
		byDigest[g.Digest] = g
		for _, l := range m.Layers {
			layers[g.Digest] = append(layers[g.Digest], l.Digest)
		}
		layers[g.Digest] = append(layers[g.Digest], m.Config.Digest)
		out = append(out, g)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].Tags[0] > out[j].Tags[0]
	})
	return out, layers, nil
}

// RetentionHint names the registry's own way to expire old artifacts, for
// registries that refuse the OCI API's DELETE. store is the store's String
// (a repository "host/path").
func RetentionHint(store string) string {
	host, _, _ := strings.Cut(store, "/")
	host = strings.ToLower(host)
	switch {
	case host == "ghcr.io":
		return "ghcr.io: delete old versions in the package's settings on GitHub, or with the actions/delete-package-versions action in a workflow"
	case strings.HasSuffix(host, ".amazonaws.com") && strings.Contains(host, ".ecr."):
		return "Amazon ECR: set a lifecycle policy on the repository (e.g. expire images with tag prefix X beyond count N)"
	case strings.HasSuffix(host, "-docker.pkg.dev") || host == "pkg.dev":
		return "Artifact Registry: set cleanup policies on the repository (gcloud artifacts repositories set-cleanup-policies)"
	case host == "gcr.io" || strings.HasSuffix(host, ".gcr.io"):
		return "Container Registry (gcr.io): move to Artifact Registry and use its cleanup policies, or delete with gcloud container images delete"
	case strings.HasSuffix(host, ".azurecr.io"):
		return "Azure Container Registry: use a retention policy or acr purge (az acr run --cmd \"acr purge --filter ...\")"
	case host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io":
		return "Docker Hub: delete tags in the repository's Tags page or with Docker Hub's tag-retention settings"
	case host == "quay.io":
		return "Quay: set an auto-prune policy on the repository, or a tag expiration (quay.expires-after label)"
	case host == "registry.gitlab.com" || strings.Contains(host, "gitlab"):
		return "GitLab: set the project's container registry cleanup policy"
	case strings.HasPrefix(store, LayoutPrefix) || strings.HasPrefix(store, "embedded store"):
		return ""
	default:
		return host + ": enable deletes (distribution: storage.delete.enabled: true) or use the registry's own retention or cleanup settings"
	}
}
