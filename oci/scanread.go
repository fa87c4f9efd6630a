package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"github.com/melcache/melcache/mount"
	"golang.org/x/sync/errgroup"
)

// hashBufSize is the read buffer per hashing worker: large enough that a
// read costs little next to SHA-256, small enough for many workers.
const hashBufSize = 256 << 10

var hashBufPool = sync.Pool{New: func() any { b := make([]byte, hashBufSize); return &b }}

// headSize is how much of a file's start a read keeps: a whole GOCACHE
// action entry plus one byte (to tell a longer file), which also covers
// the magic ClassifyOutput needs.
const headSize = mount.ActionEntryLen + 1

// fileKind tells the GOCACHE entries the scan looks into.
type fileKind uint8

const (
	kindOther  fileKind = iota
	kindAction          // GOCACHE NN/ID-a
	kindOutput          // GOCACHE NN/SHA-d, a regular file
)

func kindOf(e *Entry) (fileKind, string) {
	if e.Cache != mount.GoCache {
		return kindOther, ""
	}
	if id, ok := mount.ActionID(e.Path); ok {
		return kindAction, id
	}
	if _, ok := goCacheDataID(e.Path); ok {
		return kindOutput, ""
	}
	return kindOther, ""
}

// readEntries reads what the scan needs of each file entry no trusted
// stat cache record describes: with hashAll, its digest; GOCACHE action
// entries whole (digest, time field, output id); GOCACHE outputs' first
// bytes (their class), with jobs workers.
func readEntries(ctx context.Context, entries []Entry, jobs int, hashAll bool) error {
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i := range entries {
		e := &entries[i]
		if e.Type != TypeFile {
			continue
		}
		kind, id := kindOf(e)
		// A module-index output is left out: its digest is never needed.
		whole := hashAll && e.SHA256 == "" && e.st.class != mount.OutputModIndex || kind == kindAction && !e.st.cached
		head := kind == kindOutput && !e.st.cached
		if !whole && !head {
			continue
		}
		if gctx.Err() != nil {
			break // a read failed or ctx is done
		}
		g.Go(func() error {
			var small [2 * headSize]byte
			buf := small[:]
			if whole && e.Size > headSize {
				pb := hashBufPool.Get().(*[]byte)
				defer hashBufPool.Put(pb)
				buf = *pb
			}
			err := readFile(e, kind, id, whole, buf)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
				e.st.gone = true // removed, or replaced by a link, since the walk
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err() // entries left unread are not "gone"
}

// readFile reads entry e through a descriptor that is never a link: its
// first bytes, and with whole all of it, hashed. The stat recorded is the
// descriptor's, taken before the read. Raw system calls, not an os.File:
// most reads here are a few hundred bytes, and an os.File's poller set-up
// cost more than the read (profiled: fcntl, epoll and a 32 KiB copy
// buffer per file, since io.CopyBuffer ignores buf for an *os.File).
func readFile(e *Entry, kind fileKind, id string, whole bool, buf []byte) error {
	p := filepath.Join(e.st.root, filepath.FromSlash(e.Path))
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	r := fdReader(fd)
	var head []byte
	if whole {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return &fs.PathError{Op: "fstat", Path: p, Err: err}
		}
		e.st = sysStat(&st, e.st.root)
		h := sha256.New()
		hw := &headWriter{max: headSize}
		n, err := io.CopyBuffer(io.MultiWriter(h, hw), r, buf)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		e.SHA256, e.Size, head = hex.EncodeToString(h.Sum(nil)), n, hw.b
		e.st.read, e.st.noRecord = true, n != st.Size
	} else {
		n, _ := io.ReadFull(r, buf[:headSize])
		head = buf[:n]
	}
	switch kind {
	case kindAction:
		if a, err := mount.ParseActionEntry(head, id); err == nil {
			e.GoTime, e.st.out = a.Time.UnixNano(), a.Out
		}
	case kindOutput:
		e.st.class = mount.ClassifyOutput(bytes.NewReader(head))
	}
	return nil
}

// fdReader reads a file descriptor.
type fdReader int

func (f fdReader) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(f), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// headWriter keeps the first max bytes written to it.
type headWriter struct {
	b   []byte
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if n := min(len(p), w.max-len(w.b)); n > 0 {
		w.b = append(w.b, p[:n]...)
	}
	return len(p), nil
}

// markModIndex marks the action entries naming a module-index output as
// module-index entries too: Go rebuilds both in milliseconds, and their
// keys include GOROOT's mtimes, which change on every build in a fresh
// melange guest (docs/format.md, "Excluded entries"). An action entry
// from a trusted stat cache record keeps the record's class.
func markModIndex(entries []Entry) {
	modIndex := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		if id, ok := goCacheDataID(e.Path); ok && e.Cache == mount.GoCache && e.st.class == mount.OutputModIndex {
			modIndex[id] = true
		}
	}
	for i := range entries {
		if e := &entries[i]; e.st.out != "" && modIndex[e.st.out] {
			e.st.class = mount.OutputModIndex
		}
	}
}
