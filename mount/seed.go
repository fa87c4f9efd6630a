package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/melcache/melcache/internal/fsutil"
)

// SeedResult counts what seeding from the host module cache did.
type SeedResult struct {
	// From is the host module cache seeded from.
	From string `json:"from"`
	// Linked and Copied count files added as hard links and as copies;
	// Skipped counts files already present (never overwritten).
	Linked  int   `json:"linked"`
	Copied  int   `json:"copied"`
	Skipped int   `json:"skipped"`
	Bytes   int64 `json:"bytes"`
}

// seedSkip reports whether a file of the host's cache/download is volatile
// and not worth seeding: lock files, half-extracted markers and Go's
// temporary files.
func seedSkip(name string) bool {
	return strings.HasSuffix(name, ".lock") || strings.HasSuffix(name, ".partial") ||
		strings.Contains(name, ".tmp")
}

// seedModCache adds the host module cache's cache/download files to dst's.
// Existing files are kept. Files are hard-linked when they already belong to
// owner and the filesystem allows it, so seeding costs no space; otherwise,
// and always for the "list" files that Go rewrites in place (a link would
// let a build change the host's copy), they are copied. A link never
// changes owner: that would change the host's file too.
func seedModCache(ctx context.Context, src, dst string, owner Owner, log *slog.Logger) (SeedResult, error) {
	res := SeedResult{From: src}
	from, to := downloadDir(src), downloadDir(dst)
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			if err := os.MkdirAll(target, dirPerm); err != nil {
				return err
			}
			return nil
		}
		if !d.Type().IsRegular() || seedSkip(d.Name()) {
			return nil
		}
		if _, err := os.Lstat(target); err == nil {
			res.Skipped++
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if cur, ok := ownerOf(fi); ok && cur == owner && d.Name() != "list" {
			if err := os.Link(p, target); err == nil {
				res.Linked++
				res.Bytes += fi.Size()
				return nil
			} else if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EMLINK) {
				return fmt.Errorf("link %s: %w", target, err)
			}
		}
		if err := copyFile(p, target, fi); err != nil {
			return err
		}
		res.Copied++
		res.Bytes += fi.Size()
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("seed %s from %s: %w", dst, src, err)
	}
	log.Debug("seeded module cache", "from", src, "linked", res.Linked, "copied", res.Copied, "skipped", res.Skipped)
	return res, nil
}

// copyFile copies src to dst through a temporary file and a rename, keeping
// the mode and modification time.
//
// Durability: fsutil.SyncNone, as it always was. A seed copies a whole module
// download cache, where an fsync per file would cost more than the seed;
// Go checks the zips and .mod files it uses against go.sum, and
// `melcache verify` finds (and --repair removes) a zip a crash left torn.
func copyFile(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return fsutil.WriteFileFunc(dst, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		return nil
	}, fsutil.WriteOptions{
		Perm:       fi.Mode().Perm(),
		Sync:       fsutil.SyncNone,
		ModTime:    fi.ModTime(),
		TempPrefix: "." + filepath.Base(dst) + ".melcache-tmp",
	})
}
