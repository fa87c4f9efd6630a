package oci

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/melcache/melcache/mount"
)

// The rules that choose a push's delta base, in the order Push tries them
// (docs/format.md, "Deltas: choosing the base"). Result.BaseRule names the
// one that chose; a restore-key match adds its prefix.
const (
	BaseRuleForced     = "--base"
	BaseRuleExchanged  = "exchanged"
	BaseRuleRestoreKey = "restore-key"
	BaseRuleOtherRepo  = "other repository"
)

// base is the snapshot a push deltas against, where it lives and the rule
// that chose it.
type base struct {
	snap  *Snapshot
	store Store // the push's store, or another repository of its registry
	rule  string
}

// chooseBase applies the base rule: (a) --base; (b) the newest snapshot
// this directory pushed or pulled in the push's store, under any tag; (c)
// the newest tag matching a restore-key prefix; (d) the newest snapshot
// this directory exchanged with another repository of the same registry.
// It returns nil for a full push. Only a failing --base is an error: the
// other rules are guesses, and a guess that fails falls through to the
// next.
func chooseBase(ctx context.Context, l mount.Layout, s Store, tag string, o *Options, caches []mount.Cache, log *slog.Logger) (*base, error) {
	if o.Base != "" {
		b, err := forcedBase(ctx, s, o.Base)
		if err != nil {
			return nil, err
		}
		return logBase(log, b), nil
	}
	for _, rule := range []func() *base{
		func() *base { return exchangedBase(ctx, l, s, tag, caches, log) },
		func() *base { return restoreKeyBase(ctx, s, o.RestoreKeys, log) },
		func() *base { return otherRepoBase(ctx, l, s, log) },
	} {
		if b := rule(); b != nil {
			return logBase(log, b), nil
		}
	}
	log.Info("no delta base: pushing a full snapshot", "store", s.String())
	return nil, nil
}

func logBase(log *slog.Logger, b *base) *base {
	log.Info("delta base", "rule", b.rule, "store", b.store.String(), "digest", b.snap.Digest.String())
	return b
}

// forcedBase fetches --base.
func forcedBase(ctx context.Context, s Store, raw string) (*base, error) {
	br, err := ParseBase(raw)
	if err != nil {
		return nil, err
	}
	from := s
	if br.Repository != "" && br.Repository != s.String() {
		m, ok := s.(BlobMounter)
		if !ok {
			return nil, fmt.Errorf("--base %s names a registry repository; %s is not a registry", raw, s)
		}
		if from, err = m.Sibling(br.Repository); err != nil {
			return nil, fmt.Errorf("--base %s: %w", raw, err)
		}
	}
	snap, err := FetchSnapshot(ctx, from, br.Ref)
	if err != nil {
		return nil, fmt.Errorf("--base %s: %w", raw, err)
	}
	return &base{snap: snap, store: from, rule: BaseRuleForced}, nil
}

// exchangedBase is rule (b): the newest record of this store whose
// manifest the store still holds. The records (the store record, and the
// per-tag and pull records older versions wrote) are untrusted: each is
// validated, and only its digest is used, to fetch a snapshot that is
// verified like any other.
func exchangedBase(ctx context.Context, l mount.Layout, s Store, tag string, caches []mount.Cache, log *slog.Logger) *base {
	var recs []BaseRecord
	names := []string{storeRecord(s.String(), caches), refRecord(s.String(), tag), pullRecord(s.String())}
	// A push can delta against a snapshot of other caches too: a partial
	// push against a full one (the caches it does not hold are simply not
	// in its index), a push that now holds npm against one of the Go
	// caches alone (npm's files are all new). So the records of the
	// default set (defaultCaches) and of the Go caches are candidates.
	def, _ := defaultCaches(l)
	for _, set := range [][]mount.Cache{def, l.Caches()} {
		if !slices.Equal(set, caches) {
			names = append(names, storeRecord(s.String(), set))
		}
	}
	for _, name := range names {
		r, err := readRecord(l, name)
		if err != nil {
			log.Warn("ignoring an unreadable base record", "err", err)
			continue
		}
		if r != nil && validRecord(r, log) && r.Store == s.String() {
			recs = append(recs, *r)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.After(recs[j].Time) })
	tried := map[string]bool{}
	for _, r := range recs {
		if tried[r.Digest] {
			continue
		}
		tried[r.Digest] = true
		if snap := fetchRecorded(ctx, s, r, log); snap != nil {
			return &base{snap: snap, store: s, rule: BaseRuleExchanged}
		}
	}
	return nil
}

// restoreKeyBase is rule (c): the newest tag matching a restore-key
// prefix, found as pull's --restore-keys find it (Resolve).
func restoreKeyBase(ctx context.Context, s Store, keys []string, log *slog.Logger) *base {
	if len(keys) == 0 {
		return nil
	}
	snap, _, how, err := Resolve(ctx, s, "", keys)
	if err != nil {
		if !isNotFound(err) {
			log.Warn("restore keys found no usable base", "err", err)
		}
		return nil
	}
	return &base{snap: snap, store: s, rule: how}
}

// otherRepoBase is rule (d): the newest snapshot this directory exchanged
// with another repository of the push's registry. Its layers are mounted,
// not uploaded.
func otherRepoBase(ctx context.Context, l mount.Layout, s Store, log *slog.Logger) *base {
	m, ok := s.(BlobMounter)
	if !ok {
		return nil
	}
	rec, err := mount.ReadState[registryRecord](l, registryRecordName(m.Registry()))
	if err != nil || rec == nil {
		if err != nil {
			log.Warn("ignoring an unreadable base record", "err", err)
		}
		return nil
	}
	for i, r := range rec.Recent {
		if i == maxRegistryRecords {
			break
		}
		if r.Store == s.String() || !validRecord(&r, log) {
			continue
		}
		from, err := m.Sibling(r.Store)
		if err != nil {
			log.Warn("ignoring a base record naming another registry or a malformed repository", "store", r.Store, "err", err)
			continue
		}
		if snap := fetchRecorded(ctx, from, r, log); snap != nil {
			return &base{snap: snap, store: from, rule: BaseRuleOtherRepo}
		}
	}
	return nil
}

// validRecord checks the fields a base record's use depends on: a sha256
// digest and a time to order by.
func validRecord(r *BaseRecord, log *slog.Logger) bool {
	d, err := v1.NewHash(r.Digest)
	if err != nil || d.Algorithm != "sha256" || r.Time.IsZero() {
		log.Warn("ignoring a malformed base record", "store", r.Store, "digest", r.Digest)
		return false
	}
	return true
}

// fetchRecorded fetches a recorded snapshot by digest, or nil when the
// store no longer holds it (gc deleted it) or it does not verify.
func fetchRecorded(ctx context.Context, s Store, r BaseRecord, log *slog.Logger) *Snapshot {
	snap, err := FetchSnapshot(ctx, s, r.Digest)
	switch {
	case err == nil:
		return snap
	case isNotFound(err):
		log.Info("a recorded base is gone from the store; trying the next rule", "store", s.String(), "digest", r.Digest)
	default:
		log.Warn("cannot read a recorded base; trying the next rule", "store", s.String(), "digest", r.Digest, "err", err)
	}
	return nil
}
