package mount

import (
	"context"
	"sync"
)

// CacheCheck says what Verify checked in one cache other than Go's.
type CacheCheck struct {
	Name Cache `json:"name"`
	// Checked counts the files checked against a digest (an entry and the
	// checksum file beside it both count).
	Checked int `json:"checked"`
	// Unchecked counts the other files, volatile ones apart: what the
	// format gives nothing to check against (CacheProfile.Unverified).
	Unchecked int `json:"unchecked"`
	// Volatile counts files matching the profile's volatile patterns.
	Volatile int `json:"volatile"`
}

// cacheVerifier checks the files of one cache: it reports each bad entry
// and returns the files it checked (by rel) and those it could have checked
// but found nothing to check against (host paths, for Unverified).
type cacheVerifier func(ctx context.Context, root string, files []cacheFile, report func(Problem)) (checked map[string]bool, unverified []string, err error)

// cacheVerifiers are the verifiers of the caches other than Go's; a cache
// without one (uv, composer) is listed with everything unchecked.
var cacheVerifiers = map[Cache]cacheVerifier{
	FetchCache: verifyFetch,
	NPMCache:   verifyNPM,
	MavenCache: verifyMaven,
	PipCache:   verifyPip,
}

// verifyOtherCaches runs the verifiers of the caches other than Go's that
// are present in l, adding to res.
func (l Layout) verifyOtherCaches(ctx context.Context, res *VerifyResult, report func(Problem)) error {
	for _, c := range l.AllCaches() {
		p, _ := ProfileOf(c)
		if p.Name == GoCache || p.Name == GoModCache {
			continue
		}
		if ok, err := l.CachePresent(c); err != nil {
			return err
		} else if !ok {
			continue
		}
		files, err := l.cacheFiles(ctx, c)
		if err != nil {
			return err
		}
		cc := CacheCheck{Name: c}
		checked := map[string]bool{}
		if v := cacheVerifiers[c]; v != nil {
			var unverified []string
			checked, unverified, err = v(ctx, l.CacheDir(c), files, report)
			if err != nil {
				return err
			}
			res.Unverified = append(res.Unverified, unverified...)
		}
		for _, f := range files {
			switch {
			case checked[f.rel]:
				cc.Checked++
			case p.IsVolatile(f.rel):
				cc.Volatile++
			default:
				cc.Unchecked++
			}
		}
		res.Caches = append(res.Caches, cc)
	}
	return nil
}

// checkedSet collects the files a verifier checked, from parallel jobs.
type checkedSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func newCheckedSet() *checkedSet { return &checkedSet{m: map[string]bool{}} }

func (s *checkedSet) add(rel ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rel {
		s.m[r] = true
	}
}
