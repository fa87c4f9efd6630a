package oci

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/internal/testenv"
)

// gcStore pushes s1..s4 (20, 10, 5 and 1 days old), puts an "alias" tag
// on s2's manifest and a tag that is not a snapshot.
func gcStore(t *testing.T, now time.Time) (*memStore, map[string]v1.Hash) {
	ctx := context.Background()
	src := makeCache(t, testenv.TempDir(t))
	s := newMemStore()
	digests := map[string]v1.Hash{}
	for tag, age := range map[string]time.Duration{"s1": 20 * 24 * time.Hour, "s2": 10 * 24 * time.Hour, "s3": 5 * 24 * time.Hour, "s4": 24 * time.Hour} {
		res, err := Push(ctx, src, s, tag, Options{Now: func() time.Time { return now.Add(-age) }})
		if err != nil {
			t.Fatal(err)
		}
		digests[tag] = must(v1.NewHash(res.Digest))
	}
	_, mb, _, err := s.GetManifest(ctx, "s2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutManifest(ctx, "alias", "application/vnd.oci.image.manifest.v1+json", mb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutManifest(ctx, "other", "application/vnd.oci.image.manifest.v1+json", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)); err != nil {
		t.Fatal(err)
	}
	return s, digests
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func gcTags(res []GCSnapshot) []string {
	var out []string
	for _, g := range res {
		out = append(out, strings.Join(g.Tags, "+"))
	}
	return out
}

func TestGCRules(t *testing.T) {
	t.Parallel() // self-contained (own dirs and stores): overlaps with the other slow tests
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name          string
		o             GCOptions
		kept, deleted []string
	}{
		{"keep-last", GCOptions{KeepLast: 2}, []string{"s4", "s3"}, []string{"alias+s2", "s1"}},
		// Either rule keeps: the newest, and everything under 7 days.
		{"both", GCOptions{KeepLast: 1, MaxAge: 7 * 24 * time.Hour}, []string{"s4", "s3"}, []string{"alias+s2", "s1"}},
		{"max-age", GCOptions{MaxAge: 15 * 24 * time.Hour}, []string{"s4", "s3", "alias+s2"}, []string{"s1"}},
		{"keep-all", GCOptions{KeepLast: 10}, []string{"s4", "s3", "alias+s2", "s1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, digests := gcStore(t, now)
			tc.o.Now = func() time.Time { return now }
			res, err := GC(ctx, s, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if got := gcTags(res.Kept); !slices.Equal(got, tc.kept) {
				t.Errorf("kept %v, want %v", got, tc.kept)
			}
			if got := gcTags(res.Deleted); !slices.Equal(got, tc.deleted) {
				t.Errorf("deleted %v, want %v", got, tc.deleted)
			}
			if len(res.Skipped) != 1 || res.Skipped[0].Tags[0] != "other" {
				t.Errorf("skipped %+v, want the non-snapshot tag", res.Skipped)
			}
			tags, _ := s.Tags(ctx)
			for _, k := range tc.kept {
				for _, tag := range strings.Split(k, "+") {
					if !slices.Contains(tags, tag) {
						t.Errorf("kept tag %s is gone", tag)
					}
					if _, err := FetchSnapshot(ctx, s, tag); err != nil {
						t.Errorf("kept snapshot %s unreadable: %v", tag, err)
					}
				}
			}
			for _, d := range tc.deleted {
				for _, tag := range strings.Split(d, "+") {
					if slices.Contains(tags, tag) {
						t.Errorf("deleted tag %s still there", tag)
					}
					if d, ok := digests[tag]; ok {
						if _, _, _, err := s.GetManifest(ctx, d.String()); err == nil {
							t.Errorf("deleted manifest of %s still there", tag)
						}
					}
				}
			}
			if !slices.Contains(tags, "other") {
				t.Error("gc touched a tag that is not a snapshot")
			}
			// Same content, so every blob of a deleted snapshot is shared.
			for _, d := range res.Deleted {
				if d.SharedBlobs != d.Blobs {
					t.Errorf("%v: %d of %d blobs shared, want all", d.Tags, d.SharedBlobs, d.Blobs)
				}
			}
		})
	}
	if _, err := GC(ctx, newMemStore(), GCOptions{}); err == nil {
		t.Error("gc with no rule succeeded")
	}
}

type noDeleteStore struct{ *memStore }

func (noDeleteStore) String() string { return "ghcr.io/acme/cache" }
func (noDeleteStore) DeleteManifest(context.Context, v1.Hash) error {
	return ErrDeleteUnsupported
}

func TestGCDeleteRefused(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s, _ := gcStore(t, now)
	_, err := GC(context.Background(), noDeleteStore{s}, GCOptions{KeepLast: 1, Now: func() time.Time { return now }})
	if !errors.Is(err, ErrDeleteUnsupported) || !strings.Contains(err.Error(), "delete-package-versions") {
		t.Fatalf("err = %v, want ErrDeleteUnsupported naming ghcr.io's retention", err)
	}
}

// TestGCShortMaxAgeAlone (issue 11, finding 12a): an age rule too short to
// keep anything is refused when it is the only rule, and deletes nothing.
func TestGCShortMaxAgeAlone(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s, _ := gcStore(t, now)
	for _, age := range []time.Duration{time.Nanosecond, time.Second, MinMaxAge - 1} {
		if _, err := GC(ctx, s, GCOptions{MaxAge: age, Now: func() time.Time { return now }}); err == nil || !strings.Contains(err.Error(), "removes every snapshot") {
			t.Errorf("GC MaxAge %v: %v, want a refusal", age, err)
		}
	}
	tags, _ := s.Tags(ctx)
	if len(tags) != 6 {
		t.Fatalf("refused GC changed the store: tags %v", tags)
	}
}
