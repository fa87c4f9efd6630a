package mount

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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
		cc, unverified, err := verifyFiles(ctx, p, l.CacheDir(c), files, report)
		if err != nil {
			return err
		}
		res.Unverified = append(res.Unverified, unverified...)
		res.Caches = append(res.Caches, cc)
	}
	return nil
}

// verifyFiles runs p's verifier, if any, on files laid out under root and
// counts what it checked.
func verifyFiles(ctx context.Context, p CacheProfile, root string, files []cacheFile, report func(Problem)) (CacheCheck, []string, error) {
	cc := CacheCheck{Name: p.Name}
	checked := map[string]bool{}
	var unverified []string
	if v := cacheVerifiers[p.Name]; v != nil {
		var err error
		if checked, unverified, err = v(ctx, root, files, report); err != nil {
			return cc, nil, err
		}
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
	return cc, unverified, nil
}

// VerifyTree checks a tree laid out as cache c, a cache other than Go's,
// under root: a live cache root, or the staging copy a restore builds
// before it swaps it in (for the fetch cache, root's entries named
// sha256:<hex> and sha512:<hex>). It is what a push runs to skip and count
// bad entries, and a pull to refuse a snapshot (oci/caches.go). Problems
// name paths under root; nothing is removed.
// Links and special files are neither followed nor listed.
func VerifyTree(ctx context.Context, c Cache, root string) (CacheCheck, []Problem, error) {
	p, ok := ProfileOf(c)
	if !ok || c == GoCache || c == GoModCache {
		return CacheCheck{}, nil, fmt.Errorf("verify %s: VerifyTree checks the caches other than Go's (%s has its own checks)", root, c)
	}
	files, err := listTree(ctx, c, root)
	if err != nil {
		return CacheCheck{}, nil, err
	}
	return verifyList(ctx, p, root, files)
}

// VerifyFiles is VerifyTree limited to the files rels (slash paths relative
// to root, as VerifyTree's problems name them): what a delta push runs on
// the files it packs anew. Checks that read other files (an npm index line
// reads the size of the content its integrity names) still read them under
// root. A rel that is gone or is not a regular file is skipped.
func VerifyFiles(ctx context.Context, c Cache, root string, rels []string) (CacheCheck, []Problem, error) {
	p, ok := ProfileOf(c)
	if !ok || c == GoCache || c == GoModCache {
		return CacheCheck{}, nil, fmt.Errorf("verify %s: VerifyFiles checks the caches other than Go's (%s has its own checks)", root, c)
	}
	var files []cacheFile
	for _, rel := range rels {
		fp := filepath.Join(root, filepath.FromSlash(rel))
		if fi, err := os.Lstat(fp); err == nil && fi.Mode().IsRegular() {
			files = append(files, cacheFile{path: fp, rel: rel, size: fi.Size(), mtime: fi.ModTime()})
		}
	}
	return verifyList(ctx, p, root, files)
}

// verifyList runs p's verifier on files and collects the problems, sorted
// by path.
func verifyList(ctx context.Context, p CacheProfile, root string, files []cacheFile) (CacheCheck, []Problem, error) {
	var mu sync.Mutex
	var probs []Problem
	cc, _, err := verifyFiles(ctx, p, root, files, func(pr Problem) {
		mu.Lock()
		probs = append(probs, pr)
		mu.Unlock()
	})
	sort.Slice(probs, func(i, j int) bool { return probs[i].Path < probs[j].Path })
	return cc, probs, err
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
