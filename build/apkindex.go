package build

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// apkIndexFile is an apk repository's index, per architecture:
// REPO/ARCH/APKINDEX.tar.gz, a gzip'd tar (after a signature part) holding
// the APKINDEX text.
const apkIndexFile = "APKINDEX.tar.gz"

// maxAPKIndexBytes bounds what is read of one index, compressed: Wolfi's
// is tens of MB; a repository that sends more is not an apk repository.
const maxAPKIndexBytes = 512 << 20

// readAPKIndexGo returns the highest version of the package "go" (by name,
// or provided as go=VERSION) in an APKINDEX.tar.gz stream; "" when there
// is none.
func readAPKIndexGo(r io.Reader) (string, error) {
	zr, err := gzip.NewReader(io.LimitReader(r, maxAPKIndexBytes))
	if err != nil {
		return "", fmt.Errorf("not a gzip'd APKINDEX: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", errors.New("no APKINDEX file in the archive")
		}
		if err != nil {
			return "", fmt.Errorf("reading the APKINDEX archive: %w", err)
		}
		if h.Name == "APKINDEX" {
			return scanAPKIndexGo(tr)
		}
	}
}

// scanAPKIndexGo reads APKINDEX text: records of "K:value" lines separated
// by blank lines; P is the name, V the version, p what it provides.
func scanAPKIndexGo(r io.Reader) (string, error) {
	best := ""
	var name, ver string
	var provides []string
	flush := func() {
		if name == "go" && ver != "" {
			best = maxAPKVersion(best, ver)
		}
		for _, p := range provides {
			if v, ok := strings.CutPrefix(p, "go="); ok {
				best = maxAPKVersion(best, v)
			}
		}
		name, ver, provides = "", "", nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		k, v, ok := strings.Cut(line, ":")
		switch {
		case line == "":
			flush()
		case ok && k == "P":
			name = v
		case ok && k == "V":
			ver = v
		case ok && k == "p":
			provides = strings.Fields(v)
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading APKINDEX: %w", err)
	}
	return best, nil
}

// maxAPKVersion returns the higher of two apk versions ("" is lowest).
func maxAPKVersion(a, b string) string {
	if a == "" || compareAPKVersions(b, a) > 0 {
		return b
	}
	return a
}

// compareAPKVersions compares apk versions such as 1.26.8-r0 well enough
// for Go's: the dotted numbers, then the -rN release. A part's non-digit
// suffix (1.27rc1) sorts before the plain number.
func compareAPKVersions(a, b string) int {
	av, ar, _ := strings.Cut(a, "-r")
	bv, br, _ := strings.Cut(b, "-r")
	ap, bp := strings.Split(av, "."), strings.Split(bv, ".")
	for i := 0; i < len(ap) && i < len(bp); i++ {
		if c := comparePart(ap[i], bp[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(ap) < len(bp): // 1.26 < 1.26.0, as in apk
		return -1
	case len(ap) > len(bp):
		return 1
	}
	return comparePart(ar, br)
}

// comparePart compares one numeric version part with an optional suffix.
func comparePart(a, b string) int {
	an, as := splitDigits(a)
	bn, bs := splitDigits(b)
	switch {
	case an != bn:
		if an < bn {
			return -1
		}
		return 1
	case as == bs:
		return 0
	case as == "": // 27 > 27rc1
		return 1
	case bs == "":
		return -1
	case as < bs:
		return -1
	}
	return 1
}

func splitDigits(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:]
}

// plainNetError drops net/http's "Get URL:" and net's "dial tcp ADDR:"
// prefixes, which repeat what the message already names.
func plainNetError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	return err
}

// indexReader reads an apk repository's index for one architecture.
type indexReader struct {
	arch   string
	client *http.Client
}

// goVersion returns the highest go version in repo's index. A local
// repository is a directory (REPO/ARCH/APKINDEX.tar.gz, or REPO/APKINDEX.tar.gz);
// a remote one an http(s) URL.
func (ir indexReader) goVersion(ctx context.Context, repo string) (string, error) {
	if strings.HasPrefix(repo, "https://") || strings.HasPrefix(repo, "http://") {
		return ir.remote(ctx, strings.TrimSuffix(repo, "/")+"/"+ir.arch+"/"+apkIndexFile)
	}
	if strings.Contains(repo, "://") {
		return "", fmt.Errorf("%s: not a local directory or an http(s) URL", repo)
	}
	var firstErr error
	for _, p := range []string{filepath.Join(repo, ir.arch, apkIndexFile), filepath.Join(repo, apkIndexFile)} {
		f, err := os.Open(p)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		v, err := readAPKIndexGo(f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		return v, nil
	}
	return "", firstErr
}

func (ir indexReader) remote(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := ir.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", u, plainNetError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", u, resp.Status)
	}
	v, err := readAPKIndexGo(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s: %w", u, err)
	}
	return v, nil
}
