package mount

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// mavenSums are the checksum files Maven's resolver keeps beside what it
// downloads into the local repository (X.jar.sha1 beside X.jar), the
// strongest first; Maven writes .sha1 and .md5 by default.
var mavenSums = []struct {
	ext string
	new func() hash.Hash
}{{".sha512", sha512.New}, {".sha256", sha256.New}, {".sha1", sha1.New}, {".md5", md5.New}}

// mavenMaxSum bounds a checksum file melcache reads: one digest, maybe a
// file name after it.
const mavenMaxSum = 4096

// verifyMaven checks every file of the local repository that has checksum
// files beside it against each of them. Files without one (maven-metadata,
// _remote.repositories, or artifacts installed locally) are listed as
// unverified unless volatile.
func verifyMaven(ctx context.Context, _ string, files []cacheFile, report func(Problem)) (map[string]bool, []string, error) {
	have := map[string]bool{}
	for _, f := range files {
		have[f.rel] = true
	}
	profile, _ := ProfileOf(MavenCache)
	checked := newCheckedSet()
	var unverified []string
	var jobs []func()
	for _, f := range files {
		if isMavenSum(f.rel) {
			continue
		}
		var sums []string
		for _, s := range mavenSums {
			if have[f.rel+s.ext] {
				sums = append(sums, s.ext)
			}
		}
		if len(sums) == 0 {
			if !profile.IsVolatile(f.rel) {
				unverified = append(unverified, f.path)
			}
			continue
		}
		jobs = append(jobs, func() {
			reason, err := checkMavenFile(f.path, sums)
			if errors.Is(err, os.ErrNotExist) {
				return
			}
			rels := []string{f.rel}
			remove := []string{f.path}
			for _, ext := range sums {
				rels = append(rels, f.rel+ext)
				remove = append(remove, f.path+ext)
			}
			checked.add(rels...)
			if reason != "" {
				report(Problem{Cache: MavenCache, Path: f.path, Reason: reason, Remove: remove})
			}
		})
	}
	err := parallel(ctx, jobs)
	return checked.m, unverified, err
}

func isMavenSum(rel string) bool {
	for _, s := range mavenSums {
		if strings.HasSuffix(rel, s.ext) {
			return true
		}
	}
	return false
}

// checkMavenFile hashes p once with every algorithm of exts and compares
// each with the checksum file p+ext. err is set only when p is gone.
func checkMavenFile(p string, exts []string) (reason string, err error) {
	hs := map[string]hash.Hash{}
	var ws []io.Writer
	for _, s := range mavenSums {
		for _, ext := range exts {
			if ext == s.ext {
				hs[ext] = s.new()
				ws = append(ws, hs[ext])
			}
		}
	}
	f, err := openNoFollow(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", err
	} else if err != nil {
		return "unreadable: " + err.Error(), nil
	}
	defer f.Close()
	if _, err := io.Copy(io.MultiWriter(ws...), f); err != nil {
		return "unreadable: " + err.Error(), nil
	}
	for _, ext := range exts {
		got := hex.EncodeToString(hs[ext].Sum(nil))
		b, err := readLimited(p+ext, mavenMaxSum)
		if err != nil {
			return fmt.Sprintf("unreadable %s: %v", ext, err), nil
		}
		want := mavenDigest(string(b), len(got))
		if want == "" {
			return fmt.Sprintf("%s holds no %s digest", p+ext, ext[1:]), nil
		}
		if want != got {
			return fmt.Sprintf("content does not match its %s (%s…, %s says %s…)", ext, got[:16], ext, want[:16]), nil
		}
	}
	return "", nil
}

// mavenDigest finds the hex digest of length n in a checksum file: Maven
// writes the bare hex; older tools add the file name after it, or write
// "SHA1(name)= hex".
func mavenDigest(s string, n int) string {
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '=' }) {
		if f = strings.ToLower(f); isHex(f, n) {
			return f
		}
	}
	return ""
}
