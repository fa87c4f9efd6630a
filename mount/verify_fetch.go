package mount

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"os"
)

// fetchHashes are the digests the fetch cache's names use.
var fetchHashes = map[string]func() hash.Hash{"sha256": sha256.New, "sha512": sha512.New}

// verifyFetch checks every fetch-cache file against its name: the fetch
// pipeline takes DIR/sha256:<hex> as the source whose expected-sha256 is
// <hex> (and DIR/sha512:<hex> likewise). A file whose bytes do not hash to
// its name would be unpacked as that source.
func verifyFetch(ctx context.Context, _ string, files []cacheFile, report func(Problem)) (map[string]bool, []string, error) {
	checked := newCheckedSet()
	var jobs []func()
	for _, f := range files {
		jobs = append(jobs, func() {
			algo, want, _ := FetchDigest(f.rel)
			sum, err := digestFile(f.path, fetchHashes[algo]())
			switch {
			case errors.Is(err, os.ErrNotExist):
				return // removed meanwhile
			case err != nil:
				report(Problem{Cache: FetchCache, Path: f.path, Reason: "unreadable: " + err.Error(), Remove: []string{f.path}})
			case hex.EncodeToString(sum) != want:
				report(Problem{Cache: FetchCache, Path: f.path,
					Reason: "content does not match its name (" + algo + " " + hex.EncodeToString(sum)[:16] + "…)", Remove: []string{f.path}})
			}
			checked.add(f.rel)
		})
	}
	err := parallel(ctx, jobs)
	return checked.m, nil, err
}
