package mount

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/module"
)

// GOCACHE entry format, from cmd/go/internal/cache (cache.go): an action
// entry ("-a") is one line
//
//	"v1 <hex action id> <hex output id> <size, %20d> <unixnano, %20d>\n"
//
// and an output entry ("-d") is named by the SHA-256 of its content. Both
// live in a subdirectory named by the first byte of their id in hex.
const (
	hashSize       = 32
	hexHashSize    = 2 * hashSize
	actionSuffix   = "-a"
	outputSuffix   = "-d"
	actionEntryLen = 2 + 1 + hexHashSize + 1 + hexHashSize + 1 + 20 + 1 + 20 + 1
)

// Files at the top of GOCACHE that Go itself writes (cache/default.go,
// cache.go, test caching, fuzzing).
const (
	goCacheREADME   = "README"
	goCacheTrimFile = "trim.txt"
)

// goCacheEntry is one GOCACHE entry on disk.
type goCacheEntry struct {
	path    string // absolute
	id      string // hex id (the name without its suffix)
	action  bool   // "-a" (else "-d")
	dir     bool   // a "-d" directory: a cached executable (Go >= 1.24)
	odd     bool   // neither a regular file nor a directory (a symlink, a device)
	size    int64  // bytes (a directory's files summed)
	modTime time.Time
}

// rel returns the entry's path relative to GOCACHE, e.g. "ab/ab12...-a".
func (e goCacheEntry) rel() string {
	return filepath.Join(filepath.Base(filepath.Dir(e.path)), filepath.Base(e.path))
}

// isHex reports whether s is n lowercase hex digits, as Go names entries.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// scanGoCache lists the entries of the build cache at dir, sorted by path.
// Files that are not entries (README, trim.txt, fuzz/, temporary files) are
// not listed. A missing dir has no entries.
func scanGoCache(dir string) ([]goCacheEntry, error) {
	subs, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []goCacheEntry
	for _, sub := range subs {
		if !sub.IsDir() || !isHex(sub.Name(), 2) {
			continue
		}
		subdir := filepath.Join(dir, sub.Name())
		ents, err := os.ReadDir(subdir)
		if err != nil {
			return nil, err
		}
		for _, de := range ents {
			name := de.Name()
			id, suffix := name, ""
			if i := strings.LastIndexByte(name, '-'); i >= 0 {
				id, suffix = name[:i], name[i:]
			}
			if (suffix != actionSuffix && suffix != outputSuffix) || !isHex(id, hexHashSize) {
				continue
			}
			fi, err := de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed by a concurrent trim
			} else if err != nil {
				return nil, err
			}
			e := goCacheEntry{path: filepath.Join(subdir, name), id: id, action: suffix == actionSuffix,
				dir: fi.IsDir(), size: fi.Size(), modTime: fi.ModTime(),
				odd: !fi.Mode().IsRegular() && !fi.IsDir()}
			if e.dir {
				e.size = 0
				_ = filepath.WalkDir(e.path, func(p string, d fs.DirEntry, err error) error {
					if err == nil && d.Type().IsRegular() {
						if fi, err := d.Info(); err == nil {
							e.size += fi.Size()
						}
					}
					return nil
				})
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// actionEntry is the parsed content of an "-a" entry.
type actionEntry struct {
	id, out string
	size    int64
	time    time.Time // when Go wrote the entry
}

// parseActionEntry parses an "-a" entry the way cmd/go/internal/cache's get
// does, and checks that it names the action id it is stored under.
func parseActionEntry(b []byte, id string) (actionEntry, error) {
	if len(b) != actionEntryLen {
		return actionEntry{}, fmt.Errorf("%d bytes, want %d", len(b), actionEntryLen)
	}
	if b[0] != 'v' || b[1] != '1' || b[2] != ' ' || b[3+hexHashSize] != ' ' ||
		b[3+hexHashSize+1+hexHashSize] != ' ' || b[3+hexHashSize+1+hexHashSize+1+20] != ' ' || b[actionEntryLen-1] != '\n' {
		return actionEntry{}, errors.New("invalid header")
	}
	eid, rest := string(b[3:3+hexHashSize]), b[3+hexHashSize:]
	eout, rest := string(rest[1:1+hexHashSize]), rest[1+hexHashSize:]
	esize, rest := rest[1:1+20], rest[1+20:]
	etime := rest[1 : 1+20]
	if _, err := hex.DecodeString(eid); err != nil || !isHex(eid, hexHashSize) {
		return actionEntry{}, errors.New("bad action id")
	}
	if eid != id {
		return actionEntry{}, fmt.Errorf("names action %s, stored as %s", eid, id)
	}
	if !isHex(eout, hexHashSize) {
		return actionEntry{}, errors.New("bad output id")
	}
	size, err := strconv.ParseInt(string(bytes.TrimLeft(esize, " ")), 10, 64)
	if err != nil || size < 0 {
		return actionEntry{}, errors.New("bad size")
	}
	tm, err := strconv.ParseInt(string(bytes.TrimLeft(etime, " ")), 10, 64)
	if err != nil || tm < 0 {
		return actionEntry{}, errors.New("bad timestamp")
	}
	return actionEntry{id: eid, out: eout, size: size, time: time.Unix(0, tm)}, nil
}

// readActionEntry reads and parses the "-a" entry at e.
func readActionEntry(e goCacheEntry) (actionEntry, error) {
	f, err := os.Open(e.path)
	if err != nil {
		return actionEntry{}, err
	}
	defer f.Close()
	// One byte more than an entry, to tell "too long" from "just right".
	b, err := io.ReadAll(io.LimitReader(f, actionEntryLen+1))
	if err != nil {
		return actionEntry{}, err
	}
	return parseActionEntry(b, e.id)
}

// modVersion is one module version found in a module cache.
type modVersion struct {
	mod module.Version
	// dl is the host path of the version's files in cache/download without
	// the extension: dl+".zip", dl+".ziphash", dl+".mod".
	dl                         string
	hasZip, hasZiphash, hasMod bool
	hasPartial                 bool
	// tree is the host path of the extracted tree, or "" when there is none.
	tree string
}

// modKey identifies a module version.
func modKey(path, version string) string { return path + "@" + version }

// downloadDir is the module cache's download subtree.
func downloadDir(modcache string) string { return filepath.Join(modcache, "cache", "download") }

// scanModCache finds the module versions in the module cache at dir: those
// with files in cache/download and those with an extracted tree. Entries
// whose escaped names do not decode are skipped: Go never writes them.
func scanModCache(dir string) (map[string]*modVersion, error) {
	mods := map[string]*modVersion{}
	get := func(path, version string) *modVersion {
		k := modKey(path, version)
		m := mods[k]
		if m == nil {
			m = &modVersion{mod: module.Version{Path: path, Version: version}}
			if ep, err := module.EscapePath(path); err == nil {
				if ev, err := module.EscapeVersion(version); err == nil {
					m.dl = filepath.Join(downloadDir(dir), ep, "@v", ev)
				}
			}
			mods[k] = m
		}
		return m
	}
	dl := downloadDir(dir)
	err := filepath.WalkDir(dl, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || filepath.Base(filepath.Dir(p)) != "@v" {
			return nil
		}
		escPath, err := filepath.Rel(dl, filepath.Dir(filepath.Dir(p)))
		if err != nil {
			return nil
		}
		mpath, err := module.UnescapePath(filepath.ToSlash(escPath))
		if err != nil {
			return nil
		}
		name := d.Name()
		for _, ext := range []string{".zip", ".ziphash", ".mod", ".partial"} {
			ev, ok := strings.CutSuffix(name, ext)
			if !ok {
				continue
			}
			v, err := module.UnescapeVersion(ev)
			if err != nil {
				return nil
			}
			m := get(mpath, v)
			switch ext {
			case ".zip":
				m.hasZip = true
			case ".ziphash":
				m.hasZiphash = true
			case ".mod":
				m.hasMod = true
			case ".partial":
				m.hasPartial = true
			}
			return nil
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	trees, err := scanModTrees(dir)
	if err != nil {
		return nil, err
	}
	for _, t := range trees {
		get(t.mod.Path, t.mod.Version).tree = t.dir
	}
	return mods, nil
}

type modTree struct {
	mod module.Version
	dir string
}

// scanModTrees finds the extracted module trees: directories named
// "<escaped module path>@<escaped version>" outside cache/. Module paths
// cannot contain '@', so the first directory with one is a tree's root.
func scanModTrees(dir string) ([]modTree, error) {
	var trees []modTree
	cacheDir := filepath.Join(dir, "cache")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipAll
			}
			return err
		}
		if !d.IsDir() || p == dir {
			return nil
		}
		if p == cacheDir {
			return fs.SkipDir
		}
		name := d.Name()
		i := strings.IndexByte(name, '@')
		if i < 0 {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return fs.SkipDir
		}
		rel = filepath.ToSlash(rel)
		at := strings.LastIndexByte(rel, '@')
		mpath, err1 := module.UnescapePath(rel[:at])
		v, err2 := module.UnescapeVersion(rel[at+1:])
		if err1 == nil && err2 == nil {
			trees = append(trees, modTree{mod: module.Version{Path: mpath, Version: v}, dir: p})
		}
		return fs.SkipDir
	})
	sort.Slice(trees, func(i, j int) bool { return trees[i].dir < trees[j].dir })
	return trees, err
}

// sortedMods returns the module versions in a stable order.
func sortedMods(mods map[string]*modVersion) []*modVersion {
	out := make([]*modVersion, 0, len(mods))
	for _, m := range mods {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].mod.Path != out[j].mod.Path {
			return out[i].mod.Path < out[j].mod.Path
		}
		return out[i].mod.Version < out[j].mod.Version
	})
	return out
}
