package mount

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// npm keeps its packages in cacache (npm's cacache library, in
// $npm_config_cache/_cacache):
//
//   - content-v2/<algo>/<h[0:2]>/<h[2:4]>/<h[4:]>: the bytes whose <algo>
//     digest is the hex h;
//   - index-v5/<k[0:2]>/<k[2:4]>/<k[4:]>: the bucket of the keys whose
//     sha256 is the hex k; each line is "\n<sha1 hex of J>\t<J>", J the
//     JSON entry {"key", "integrity" (a subresource-integrity string, null
//     for a deletion), "size", "time", "metadata"}. Newer lines win.
const (
	npmCacacheDir = "_cacache"
	npmContentDir = "content-v2"
	npmIndexDir   = "index-v5"
	// npmMaxBucket bounds the bucket melcache reads into memory: a bucket
	// holds one key's entries, a few hundred bytes each; a larger one was
	// not written by npm.
	npmMaxBucket = 64 << 20
)

// npmAlgos are cacache's content algorithms, strongest first: an entry's
// content is stored under the strongest algorithm its integrity names.
var npmAlgos = []struct {
	name string
	new  func() hash.Hash
}{{"sha512", sha512.New}, {"sha384", sha512.New384}, {"sha256", sha256.New}, {"sha1", sha1.New}}

func npmAlgo(name string) func() hash.Hash {
	for _, a := range npmAlgos {
		if a.name == name {
			return a.new
		}
	}
	return nil
}

// verifyNPM checks cacache: every content file against its name (so an
// index entry's content against the entry's integrity, which names it),
// every index line against its sha1 prefix, its bucket (the sha256 of its
// key) and the size of the content its integrity names.
func verifyNPM(ctx context.Context, root string, files []cacheFile, report func(Problem)) (map[string]bool, []string, error) {
	checked := newCheckedSet()
	var jobs []func()
	for _, f := range files {
		parts := strings.Split(f.rel, "/")
		if len(parts) < 2 || parts[0] != npmCacacheDir {
			continue
		}
		switch parts[1] {
		case npmContentDir:
			jobs = append(jobs, func() {
				if reason, ok := checkNPMContent(f, parts); ok {
					checked.add(f.rel)
					if reason != "" {
						report(Problem{Cache: NPMCache, Path: f.path, Reason: reason, Remove: []string{f.path}})
					}
				}
			})
		case npmIndexDir:
			jobs = append(jobs, func() {
				if reason, ok := checkNPMBucket(root, f, parts); ok {
					checked.add(f.rel)
					if reason != "" {
						report(Problem{Cache: NPMCache, Path: f.path, Reason: reason, Remove: []string{f.path}})
					}
				}
			})
		}
	}
	err := parallel(ctx, jobs)
	return checked.m, nil, err
}

// checkNPMContent checks a content-v2 file against its name; ok is false
// for a file that is not named as content (left unchecked).
func checkNPMContent(f cacheFile, parts []string) (reason string, ok bool) {
	if len(parts) != 6 || len(parts[3]) != 2 || len(parts[4]) != 2 {
		return "", false
	}
	newHash := npmAlgo(parts[2])
	want := parts[3] + parts[4] + parts[5]
	if newHash == nil || !isHex(want, 2*newHash().Size()) {
		return "", false
	}
	sum, err := digestFile(f.path, newHash())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", false
	case err != nil:
		return "unreadable content: " + err.Error(), true
	case hex.EncodeToString(sum) != want:
		return fmt.Sprintf("content does not match its name (%s %s…)", parts[2], hex.EncodeToString(sum)[:16]), true
	}
	return "", true
}

// npmEntry is the part of an index entry melcache checks.
type npmEntry struct {
	Key       string  `json:"key"`
	Integrity *string `json:"integrity"`
	Size      *int64  `json:"size"`
}

// checkNPMBucket checks an index-v5 bucket's lines; ok is false for a file
// that is not named as a bucket.
func checkNPMBucket(root string, f cacheFile, parts []string) (reason string, ok bool) {
	if len(parts) != 5 || len(parts[2]) != 2 || len(parts[3]) != 2 || !isHex(parts[2]+parts[3]+parts[4], 64) {
		return "", false
	}
	b, err := readLimited(f.path, npmMaxBucket)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	} else if err != nil {
		return "unreadable index bucket: " + err.Error(), true
	}
	bucket := parts[2] + parts[3] + parts[4]
	for n, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if r := checkNPMLine(root, bucket, line); r != "" {
			return fmt.Sprintf("index line %d: %s", n+1, r), true
		}
	}
	return "", true
}

// checkNPMLine checks one "<sha1>\t<json>" line of the bucket named bucket.
func checkNPMLine(root, bucket string, line []byte) string {
	sum, js, ok := bytes.Cut(line, []byte("\t"))
	if !ok || !isHex(string(sum), 40) {
		return "not <sha1>\\t<json>"
	}
	if h := sha1.Sum(js); hex.EncodeToString(h[:]) != string(sum) {
		return "its sha1 prefix does not match the entry"
	}
	var e npmEntry
	if err := json.Unmarshal(js, &e); err != nil {
		return "malformed entry: " + err.Error()
	}
	if k := sha256.Sum256([]byte(e.Key)); hex.EncodeToString(k[:]) != bucket {
		return fmt.Sprintf("key %q does not belong in this bucket (sha256 of the key)", e.Key)
	}
	if e.Integrity == nil || e.Size == nil {
		return "" // a deletion, or an entry without a size to compare
	}
	algo, hexsum := npmIntegrity(*e.Integrity)
	if algo == "" {
		return fmt.Sprintf("integrity %q names no sha512, sha384, sha256 or sha1 digest", *e.Integrity)
	}
	content := filepath.Join(root, npmCacacheDir, npmContentDir, algo, hexsum[:2], hexsum[2:4], hexsum[4:])
	if fi, err := os.Lstat(content); err == nil && fi.Mode().IsRegular() && fi.Size() != *e.Size {
		return fmt.Sprintf("entry %q says %d bytes, its content %s has %d", e.Key, *e.Size, content, fi.Size())
	}
	return ""
}

// npmIntegrity returns the strongest digest of a subresource-integrity
// string ("sha512-<base64> sha1-<base64>", options after '?'), as cacache
// picks the algorithm it stores content under; "" when none is known.
func npmIntegrity(sri string) (algo, hexsum string) {
	found := map[string]string{}
	for _, f := range strings.Fields(sri) {
		name, b64, ok := strings.Cut(f, "-")
		b64, _, _ = strings.Cut(b64, "?")
		sum, err := base64.StdEncoding.DecodeString(b64)
		if newHash := npmAlgo(name); ok && err == nil && newHash != nil && len(sum) == newHash().Size() {
			found[name] = hex.EncodeToString(sum)
		}
	}
	for _, a := range npmAlgos {
		if h, ok := found[a.name]; ok {
			return a.name, h
		}
	}
	return "", ""
}

// readLimited reads a file the build wrote, not following a link, and
// refuses one larger than max.
func readLimited(p string, max int64) ([]byte, error) {
	f, err := openNoFollow(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, max)
	}
	return b, nil
}
