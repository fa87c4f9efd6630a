package mount

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/melcache/melcache/internal/fsutil"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Repair removes what is bad; Go then rebuilds or re-downloads it.
	Repair bool
	// GoSums are go.sum files whose module hashes the cached modules must
	// match.
	GoSums      []string
	Lock        *Lock
	LockOptions LockOptions
	Log         *slog.Logger
}

// Problem is one bad cache entry.
type Problem struct {
	Cache Cache `json:"cache"`
	// Path is the bad entry's host path.
	Path string `json:"path"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
	// Remove lists the paths a repair removes: the entry and whatever is
	// only valid together with it.
	Remove []string `json:"remove"`
	// Repaired is true when Remove was carried out.
	Repaired bool `json:"repaired"`
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// VerifyResult reports what Verify checked and found.
type VerifyResult struct {
	// Counts of what was checked.
	Outputs int `json:"outputs"`
	Actions int `json:"actions"`
	Zips    int `json:"zips"`
	Trees   int `json:"trees"`
	GoSum   int `json:"gosumLines"`
	// Unverified lists module files Verify had nothing to check against
	// (a zip or tree with no .ziphash and no go.sum line).
	Unverified []string `json:"unverified,omitempty"`
	// Problems lists the bad entries, by path.
	Problems []Problem `json:"problems"`
	// Caches reports the caches other than Go's that are present.
	Caches []CacheCheck `json:"caches,omitempty"`
}

// OK reports whether nothing bad was found (or everything found was
// repaired).
func (r *VerifyResult) OK() bool {
	for _, p := range r.Problems {
		if !p.Repaired {
			return false
		}
	}
	return true
}

// Verify checks the caches' integrity:
//
//   - every build-cache output ("-d") matches its name, the SHA-256 of its
//     content; an output directory (a cached executable, Go >= 1.24) holds
//     exactly one regular file, named for the executable, whose SHA-256 is the
//     directory's name (cmd/go/internal/cache, copyFile);
//   - every action entry ("-a") is well formed and names the action it is
//     stored under;
//   - every module zip and extracted tree matches its .ziphash, as `go mod
//     verify` checks them (golang.org/x/mod/sumdb/dirhash);
//   - with GoSums, every cached module zip and go.mod matches go.sum;
//   - the other caches present, as their formats allow (verify_caches.go,
//     docs/caches.md).
//
// A name check catches corruption, not a malicious writer: a new, correctly
// named output plus an action entry pointing at it passes every check
// (docs/background.md, "No re-hash on use"). With o.Repair the bad entries are removed.
func (l Layout) Verify(ctx context.Context, o VerifyOptions) (*VerifyResult, error) {
	if err := l.checkExists(); err != nil {
		return nil, err
	}
	sums, err := readGoSums(o.GoSums)
	if err != nil {
		return nil, err
	}
	mode := Shared
	if o.Repair {
		mode = Exclusive
	}
	release, err := l.Acquire(ctx, o.Lock, mode, o.LockOptions)
	if err != nil {
		return nil, err
	}
	defer release()
	// A root that is a link is refused: --repair would remove files
	// wherever it points (a build can plant one).
	if err := l.CheckCacheRoots(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	res := &VerifyResult{GoSum: len(sums)}
	var mu sync.Mutex
	report := func(p Problem) {
		mu.Lock()
		res.Problems = append(res.Problems, p)
		mu.Unlock()
	}
	if gc := l.CacheDir(GoCache); gc != "" {
		if err := verifyGoCache(ctx, gc, res, report); err != nil {
			return nil, err
		}
	}
	if err := verifyModCache(ctx, l.CacheDir(GoModCache), sums, res, report); err != nil {
		return nil, err
	}
	if err := l.verifyOtherCaches(ctx, res, report); err != nil {
		return nil, err
	}
	sort.Slice(res.Problems, func(i, j int) bool { return res.Problems[i].Path < res.Problems[j].Path })
	sort.Strings(res.Unverified)
	if o.Repair {
		for i := range res.Problems {
			p := &res.Problems[i]
			for _, r := range p.Remove {
				if err := fsutil.RemoveAll(r); err != nil {
					return res, fmt.Errorf("repair: %w", err)
				}
			}
			p.Repaired = true
		}
	}
	return res, nil
}

// parallel runs jobs on up to GOMAXPROCS goroutines: hashing a large cache
// is CPU bound. It stops early when ctx is done.
func parallel(ctx context.Context, jobs []func()) error {
	ch := make(chan func())
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				j()
			}
		}()
	}
	var err error
	for _, j := range jobs {
		if err = ctx.Err(); err != nil {
			break
		}
		ch <- j
	}
	close(ch)
	wg.Wait()
	return err
}

func verifyGoCache(ctx context.Context, gc string, res *VerifyResult, report func(Problem)) error {
	ents, err := scanGoCache(gc)
	if err != nil {
		return fmt.Errorf("verify %s: %w", gc, err)
	}
	var jobs []func()
	for _, e := range ents {
		if e.action {
			res.Actions++
		} else {
			res.Outputs++
		}
		jobs = append(jobs, func() {
			if reason := checkGoCacheEntry(e); reason != "" {
				report(Problem{Cache: GoCache, Path: e.path, Reason: reason, Remove: []string{e.path}})
			}
		})
	}
	return parallel(ctx, jobs)
}

// checkGoCacheEntry returns why e is bad, or "".
func checkGoCacheEntry(e goCacheEntry) string {
	if e.odd || (e.dir && e.action) {
		// Go writes only regular files, and directories for executables;
		// a link could point anywhere.
		return "not a regular file"
	}
	if e.action {
		if _, err := readActionEntry(e); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return ""
			}
			return "malformed action entry: " + err.Error()
		}
		return ""
	}
	file := e.path
	if e.dir {
		ents, err := os.ReadDir(e.path)
		if err != nil {
			return "unreadable output directory: " + err.Error()
		}
		if len(ents) != 1 || !ents[0].Type().IsRegular() {
			return fmt.Sprintf("output directory must hold exactly one file, holds %d entries", len(ents))
		}
		file = filepath.Join(e.path, ents[0].Name())
	}
	sum, err := sha256File(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "" // trimmed meanwhile
		}
		return "unreadable output: " + err.Error()
	}
	if sum != e.id {
		return "content does not match its name (sha256 " + sum[:16] + "…)"
	}
	return ""
}

func sha256File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// goSumLine is one go.sum hash; key is "path@version" or
// "path@version/go.mod".
type goSums map[string]string

// readGoSums reads go.sum files. Conflicting lines across files are kept as
// the first seen: a go.sum has one hash per key.
func readGoSums(files []string) (goSums, error) {
	sums := goSums{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--gosum: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 {
				continue
			}
			if len(fields) != 3 || !strings.HasPrefix(fields[2], "h1:") {
				return nil, fmt.Errorf("--gosum: %s:%d: malformed go.sum line", f, n)
			}
			k := fields[0] + "@" + fields[1]
			if _, ok := sums[k]; !ok {
				sums[k] = fields[2]
			}
		}
	}
	return sums, nil
}

func verifyModCache(ctx context.Context, mc string, sums goSums, res *VerifyResult, report func(Problem)) error {
	mods, err := scanModCache(mc)
	if err != nil {
		return fmt.Errorf("verify %s: %w", mc, err)
	}
	var mu sync.Mutex
	var jobs []func()
	for _, m := range sortedMods(mods) {
		if m.hasZip {
			res.Zips++
		}
		if m.tree != "" && !m.hasPartial {
			res.Trees++
		}
		jobs = append(jobs, func() {
			probs, unverified := checkModule(m, sums)
			for _, p := range probs {
				report(p)
			}
			mu.Lock()
			res.Unverified = append(res.Unverified, unverified...)
			mu.Unlock()
		})
	}
	return parallel(ctx, jobs)
}

// checkModule checks one module version's zip, tree and go.mod against its
// .ziphash and go.sum. Repairs are chosen so that what is left is
// consistent: a bad zip goes; its .ziphash goes too unless a good tree
// vouches for it; a bad tree goes; a module whose cached hash disagrees with
// go.sum goes entirely.
func checkModule(m *modVersion, sums goSums) (probs []Problem, unverified []string) {
	key := modKey(m.mod.Path, m.mod.Version)
	zip, ziphash, mod := m.dl+".zip", m.dl+".ziphash", m.dl+".mod"
	want, wantFrom := "", ".ziphash"
	if m.hasZiphash {
		b, err := os.ReadFile(ziphash)
		want = strings.TrimSpace(string(b))
		if err != nil || !strings.HasPrefix(want, "h1:") {
			rm := []string{ziphash}
			if m.tree != "" {
				rm = append(rm, m.tree) // Go treats a tree without .ziphash as partial
			}
			return []Problem{{Cache: GoModCache, Path: ziphash, Reason: "malformed .ziphash", Remove: rm}}, nil
		}
	}
	if s, ok := sums[key]; ok {
		if want != "" && want != s {
			rm := []string{zip, ziphash}
			if m.tree != "" {
				rm = append(rm, m.tree)
			}
			probs = append(probs, Problem{Cache: GoModCache, Path: ziphash,
				Reason: fmt.Sprintf("%s hash %s does not match go.sum (%s)", key, want, s), Remove: rm})
			return probs, nil
		}
		if want == "" {
			want, wantFrom = s, "go.sum"
		}
	}
	zipBad, treeBad := false, false
	if m.hasZip {
		if want == "" {
			unverified = append(unverified, zip)
		} else if got, err := dirhash.HashZip(zip, dirhash.Hash1); err != nil || got != want {
			zipBad = true
			reason := "zip does not match " + wantFrom
			if err != nil {
				reason = "unreadable zip: " + err.Error()
			}
			probs = append(probs, Problem{Cache: GoModCache, Path: zip, Reason: reason, Remove: []string{zip}})
		}
	}
	if m.tree != "" && !m.hasPartial {
		if want == "" {
			unverified = append(unverified, m.tree)
		} else if got, err := dirhash.HashDir(m.tree, key, dirhash.Hash1); err != nil || got != want {
			treeBad = true
			reason := "extracted tree does not match " + wantFrom
			if err != nil {
				reason = "unreadable extracted tree: " + err.Error()
			}
			probs = append(probs, Problem{Cache: GoModCache, Path: m.tree, Reason: reason, Remove: []string{m.tree}})
		}
	}
	if zipBad && m.hasZiphash && (m.tree == "" || treeBad) {
		// Nothing left vouches for the .ziphash: it may be the bad part.
		probs[0].Remove = append(probs[0].Remove, ziphash)
	}
	if s, ok := sums[key+"/go.mod"]; ok && m.hasMod {
		got, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return os.Open(mod) })
		if err != nil || got != s {
			probs = append(probs, Problem{Cache: GoModCache, Path: mod,
				Reason: fmt.Sprintf("go.mod hash %s does not match go.sum (%s)", got, s), Remove: []string{mod}})
		}
	}
	return probs, unverified
}
