package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/melcache/melcache/oci"
)

// hostileLayout writes an OCI layout holding one hand-made snapshot under
// tag "bad", as a hostile pusher could make it: entries is the index,
// members the data layer's tar, and edit may change the config or the
// manifest before they are written.
func hostileLayout(t *testing.T, dir string, entries []map[string]any, members []tar.Header, bodies []string,
	editConfig func(map[string]any), editManifest func(map[string]any)) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for i, h := range members {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(bodies[i]))
		}
		tw.WriteHeader(&h)
		tw.Write([]byte(bodies[i]))
	}
	tw.Close()
	layoutFromTar(t, dir, entries, tb.Bytes(), editConfig, editManifest)
}

// layoutFromTar writes an OCI layout holding one snapshot under tag "bad"
// whose index is entries and whose one data layer is the zstd of tarBytes,
// taken as given (it may be truncated or otherwise malformed).
func layoutFromTar(t *testing.T, dir string, entries []map[string]any, tarBytes []byte,
	editConfig func(map[string]any), editManifest func(map[string]any)) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	put := func(b []byte) (string, int64) {
		h := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(h[:])
		os.WriteFile(filepath.Join(dir, "blobs", "sha256", hex.EncodeToString(h[:])), b, 0o644)
		return d, int64(len(b))
	}
	enc, _ := zstd.NewWriter(nil)
	layer := enc.EncodeAll(tarBytes, nil)
	ld, ls := put(layer)
	ib, _ := json.Marshal(map[string]any{"formatVersion": 1, "entries": entries})
	iz := enc.EncodeAll(ib, nil)
	id, is := put(iz)
	files, size := 0, int64(0)
	for _, e := range entries {
		if e["type"] == "file" {
			files++
			size += int64(e["size"].(int))
		}
	}
	cfg := map[string]any{"formatVersion": 1, "arch": oci.HostArch(), "files": files, "size": size,
		"index":  map[string]any{"digest": id, "size": len(ib)},
		"layers": []map[string]any{{"digest": ld, "cache": "gocache", "generation": 1, "files": files, "size": len(tarBytes)}}}
	if editConfig != nil {
		editConfig(cfg)
	}
	cb, _ := json.Marshal(cfg)
	cd, cs := put(cb)
	man := map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		// Format version 1, which pull still reads: its one index
		// document names layers, so hand-made entries need no positions.
		"artifactType": "application/vnd.melcache.snapshot.v1",
		"config":       map[string]any{"mediaType": "application/vnd.melcache.snapshot.config.v1+json", "digest": cd, "size": cs},
		"layers": []map[string]any{{"mediaType": "application/vnd.melcache.snapshot.index.v1+json+zstd", "digest": id, "size": is},
			{"mediaType": oci.LayerMediaType, "digest": ld, "size": ls}},
		"annotations": map[string]string{oci.AnnotationCreated: "2026-01-01T00:00:00Z"}}
	if editManifest != nil {
		editManifest(man)
	}
	mb, _ := json.Marshal(man)
	md, ms := put(mb)
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":"bad"}}]}`, md, ms)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(idx), 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// TestCLIRefusesHostileSnapshots: melcache pull of hand-made hostile
// snapshots exits 1 with one clear line naming the problem, and the cache
// directory (with a cache in it) is left exactly as it was. The library's
// table tests (oci/refuse_test.go, oci/refuse_more_test.go) and
// FuzzLayerReader cover more cases; these prove the CLI's exit code and
// the untouched dir for one of each kind.
func TestCLIRefusesHostileSnapshots(t *testing.T) {
	t.Parallel() // self-contained (own dirs, stores, processes): overlaps with the other slow tests
	body := "hello"
	h := sha256.Sum256([]byte(body))
	sum := hex.EncodeToString(h[:])
	file := func(p string, mode int) map[string]any {
		return map[string]any{"cache": "gocache", "path": p, "type": "file", "mode": mode, "size": len(body), "sha256": sum}
	}
	reg := func(name string) tar.Header { return tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644} }
	zeros := strings.Repeat("\x00", 1<<20)
	zh := sha256.Sum256([]byte(zeros))
	cases := []struct {
		name    string
		entries []map[string]any
		members []tar.Header
		bodies  []string
		cfg     func(map[string]any)
		man     func(map[string]any)
		want    string
	}{
		{"dotdot", []map[string]any{file("../../evil", 0o644)}, []tar.Header{reg("gocache/../../evil")}, []string{body}, nil, nil, `path component ".."`},
		{"absolute", []map[string]any{file("/etc/evil", 0o644)}, []tar.Header{reg("/etc/evil")}, []string{body}, nil, nil, "absolute path"},
		{"symlink member", []map[string]any{file("x", 0o644)}, []tar.Header{{Typeflag: tar.TypeSymlink, Name: "gocache/x", Linkname: "/etc/passwd"}}, []string{""}, nil, nil, "only regular files"},
		{"hard link member", []map[string]any{file("x", 0o644)}, []tar.Header{{Typeflag: tar.TypeLink, Name: "gocache/x", Linkname: "/etc/passwd"}}, []string{""}, nil, nil, "only regular files"},
		{"char device", []map[string]any{file("x", 0o644)}, []tar.Header{{Typeflag: tar.TypeChar, Name: "gocache/x", Devmajor: 1, Devminor: 3}}, []string{""}, nil, nil, "only regular files"},
		{"setuid", []map[string]any{file("x", 0o4755)}, []tar.Header{reg("gocache/x")}, []string{body}, nil, nil, "setuid"},
		{"duplicate", []map[string]any{file("x", 0o644), file("x", 0o644)}, []tar.Header{reg("gocache/x")}, []string{body}, nil, nil, "duplicate entry"},
		{"long name", []map[string]any{file(strings.Repeat("n", 300), 0o644)}, nil, nil, nil, nil, "over 255 bytes"},
		{"zstd bomb", []map[string]any{{"cache": "gocache", "path": "z", "type": "file", "mode": 0o644, "size": len(zeros), "sha256": hex.EncodeToString(zh[:])}},
			[]tar.Header{reg("gocache/z")}, []string{zeros}, func(c map[string]any) {
				c["layers"].([]map[string]any)[0]["size"] = len(zeros) // the tar headers push it over
			}, nil, "more bytes than the config declares"},
		{"artifactType", []map[string]any{file("x", 0o644)}, []tar.Header{reg("gocache/x")}, []string{body}, nil,
			func(m map[string]any) { m["artifactType"] = "application/vnd.example.v1" }, "not a melcache snapshot"},
		{"format version", []map[string]any{file("x", 0o644)}, []tar.Header{reg("gocache/x")}, []string{body},
			func(c map[string]any) { c["formatVersion"] = 9 }, nil, "format version 9"},
		{"file count lies", []map[string]any{file("x", 0o644)}, []tar.Header{reg("gocache/x")}, []string{body},
			func(c map[string]any) { c["files"] = 7 }, nil, "config declares 7"},
	}
	w := t.TempDir()
	dir := filepath.Join(w, "cache")
	mkCache(t, dir, 9, 10, 500)
	before := treeState(t, dir)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lay := filepath.Join(t.TempDir(), "lay")
			hostileLayout(t, lay, tc.entries, tc.members, tc.bodies, tc.cfg, tc.man)
			r := mrun(t, nil, "pull", "--dir", dir, "oci:"+lay+":bad")
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q; want exit 1 and one line containing %q", r.code, r.stderr, tc.want)
			}
			if treeState(t, dir) != before {
				t.Fatal("refused pull changed the cache")
			}
			checkClean(t, dir)
			if exists(filepath.Join(w, "evil")) || exists("/etc/evil") {
				t.Fatal("a file was written outside the cache")
			}
		})
	}
}
