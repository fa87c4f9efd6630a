package mount

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
)

// pip's cache ($PIP_CACHE_DIR) holds wheels it built (wheels/…/*.whl) and
// HTTP responses (http-v2/…/<sha224 of the URL> and, from pip 23.3, the body
// beside it as <name>.body; before that, http/… with the body inside
// cachecontrol's msgpack). cachecontrol records no digest of a body, so
// what melcache can check is a wheel's RECORD: the urlsafe-base64 sha256 (or
// stronger) and size of every file in the wheel (the wheel format, PEP 427).
// RECORD travels in the wheel, so this catches corruption, not a forger.
const (
	pipBodySuffix = ".body"
	pipWheelExt   = ".whl"
	// pipMaxRecord bounds the RECORD melcache reads into memory: one line
	// per file of the wheel.
	pipMaxRecord = 16 << 20
)

// zipMagic starts every zip file (a wheel among them).
var zipMagic = []byte("PK\x03\x04")

// recordHashes are the RECORD algorithms melcache checks (PEP 427 forbids
// weaker ones than sha256).
var recordHashes = map[string]func() hash.Hash{"sha256": sha256.New, "sha384": sha512.New384, "sha512": sha512.New}

// verifyPip checks every wheel in the pip cache against its RECORD: the
// wheels pip built (*.whl) and the http-v2 bodies that are wheels.
func verifyPip(ctx context.Context, _ string, files []cacheFile, report func(Problem)) (map[string]bool, []string, error) {
	checked := newCheckedSet()
	var jobs []func()
	for _, f := range files {
		if !strings.HasSuffix(f.rel, pipWheelExt) && !strings.HasSuffix(f.rel, pipBodySuffix) {
			continue
		}
		jobs = append(jobs, func() {
			reason, ok := checkWheel(f.path)
			if !ok {
				return
			}
			checked.add(f.rel)
			if reason != "" {
				report(Problem{Cache: PipCache, Path: f.path, Reason: reason, Remove: []string{f.path}})
			}
		})
	}
	err := parallel(ctx, jobs)
	return checked.m, nil, err
}

// checkWheel checks the wheel at p against its RECORD; ok is false when p
// is not a zip with a RECORD (an http body of another kind) or is gone.
func checkWheel(p string) (reason string, ok bool) {
	f, err := openNoFollow(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	} else if err != nil {
		return "unreadable: " + err.Error(), true
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "unreadable: " + err.Error(), true
	}
	magic := make([]byte, len(zipMagic))
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, zipMagic) {
		if strings.HasSuffix(p, pipWheelExt) {
			return "not a zip file", true
		}
		return "", false
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return "unreadable zip: " + err.Error(), true
	}
	record, err := wheelRecord(zr)
	if record == nil && err == nil {
		if strings.HasSuffix(p, pipWheelExt) {
			return "no .dist-info/RECORD", true
		}
		return "", false
	}
	if err != nil {
		return err.Error(), true
	}
	return checkRecord(zr, record), true
}

// wheelRecord finds and reads the wheel's <name>.dist-info/RECORD; nil
// when there is none, an error when there are several.
func wheelRecord(zr *zip.Reader) (map[string][2]string, error) {
	var rec *zip.File
	for _, zf := range zr.File {
		if dir, base := path.Split(zf.Name); base == "RECORD" && strings.HasSuffix(dir, ".dist-info/") && strings.Count(dir, "/") == 1 {
			if rec != nil {
				return nil, fmt.Errorf("two RECORD files (%s, %s)", rec.Name, zf.Name)
			}
			rec = zf
		}
	}
	if rec == nil {
		return nil, nil
	}
	rc, err := rec.Open()
	if err != nil {
		return nil, fmt.Errorf("RECORD: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, pipMaxRecord))
	if err != nil {
		return nil, fmt.Errorf("RECORD: %w", err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("malformed RECORD: %w", err)
	}
	out := map[string][2]string{}
	for _, r := range rows {
		if len(r) != 3 {
			return nil, fmt.Errorf("malformed RECORD line %q", strings.Join(r, ","))
		}
		out[r[0]] = [2]string{r[1], r[2]}
	}
	return out, nil
}

// checkRecord compares every file of the wheel with its RECORD row: each
// file is listed (RECORD and its signatures apart) with a known hash and
// its size, and each listed file is in the wheel.
func checkRecord(zr *zip.Reader, record map[string][2]string) string {
	seen := map[string]bool{}
	for _, zf := range zr.File {
		if strings.HasSuffix(zf.Name, "/") {
			continue
		}
		seen[zf.Name] = true
		base := path.Base(zf.Name)
		if strings.HasSuffix(path.Dir(zf.Name), ".dist-info") && (base == "RECORD" || base == "RECORD.jws" || base == "RECORD.p7s") {
			continue
		}
		row, ok := record[zf.Name]
		if !ok {
			return zf.Name + " is not in RECORD"
		}
		if r := checkRecordRow(zf, row[0], row[1]); r != "" {
			return zf.Name + ": " + r
		}
	}
	for name, row := range record {
		if !seen[name] && row[0] != "" {
			return name + " is in RECORD but not in the wheel"
		}
	}
	return ""
}

// checkRecordRow checks one file against "algo=<urlsafe base64>" and size.
func checkRecordRow(zf *zip.File, sum, size string) string {
	algo, b64, _ := strings.Cut(sum, "=")
	newHash := recordHashes[algo]
	want, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b64, "="))
	if newHash == nil || err != nil {
		return fmt.Sprintf("RECORD hash %q is not sha256, sha384 or sha512", sum)
	}
	rc, err := zf.Open()
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	h := newHash()
	n, err := io.Copy(h, rc)
	if err != nil {
		return err.Error()
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return "content does not match its RECORD " + algo
	}
	if size != "" && size != strconv.FormatInt(n, 10) {
		return fmt.Sprintf("RECORD says %s bytes, it has %d", size, n)
	}
	return ""
}
