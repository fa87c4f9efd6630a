// Command framesize measures what the zstd frame size of a data layer costs
// (docs/benchmarks.md, "cacheprog: frame size"): for each frame size it
// packs DIR (a GOCACHE) as a sorted tar, compresses it in independent
// frames as melcache's packer does (klauspost zstd, fastest level, no
// checksum, frames compressed in parallel), and reports the compressed
// size, the mean compressed frame (what a lazy get of one small entry
// downloads), and the time to compress and to decompress it all.
//
// With USED set to another GOCACHE (what one build needed), it also reports
// the compressed bytes of the frames holding USED's entries that DIR has:
// what a lazy build downloads at most, neighbours included.
//
// Usage: [USED=DIR2] go run ./bench/framesize DIR [FRAMESIZE...]   (sizes in KiB)
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: framesize DIR [KIB...]")
		os.Exit(2)
	}
	tb, spans, err := tarOf(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sizes := []int{4096, 1024, 512, 256}
	if len(os.Args) > 2 {
		sizes = sizes[:0]
		for _, a := range os.Args[2:] {
			n, err := strconv.Atoi(a)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			sizes = append(sizes, n)
		}
	}
	fmt.Printf("tar %d bytes, %d cores\n", len(tb), runtime.GOMAXPROCS(0))
	used := usedSpans(spans, os.Getenv("USED"))
	fmt.Printf("%-10s %12s %8s %12s %10s %10s %14s\n", "frame", "compressed", "frames", "mean frame", "compress", "decompress", "lazy (USED)")
	for _, kib := range sizes {
		frames, ct := compress(tb, kib<<10)
		var total int
		for _, f := range frames {
			total += len(f)
		}
		dt := decompress(frames)
		touched := map[int]bool{}
		for _, sp := range used {
			for f := sp[0] / (kib << 10); f <= (sp[0]+max(sp[1], 1)-1)/(kib<<10); f++ {
				touched[f] = true
			}
		}
		lazy := 0
		for f := range touched {
			lazy += len(frames[f])
		}
		fmt.Printf("%-10s %12d %8d %12d %9.3fs %9.3fs %14d\n", strconv.Itoa(kib)+"K", total, len(frames), total/len(frames), ct.Seconds(), dt.Seconds(), lazy)
	}
}

// usedSpans are the spans of the entries of spans that the GOCACHE used
// also holds (none when used is "").
func usedSpans(spans map[string][2]int, used string) [][2]int {
	var out [][2]int
	if used == "" {
		return out
	}
	n, bytes := 0, 0
	filepath.WalkDir(used, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(used, p)
			if sp, ok := spans[rel]; ok {
				out = append(out, sp)
				n++
				bytes += sp[1]
			}
		}
		return nil
	})
	fmt.Printf("USED: %d entries of DIR, %d bytes uncompressed\n", n, bytes)
	return out
}

// tarOf is DIR's regular files as a tar sorted by name, and each file's
// content offset and size in it.
func tarOf(dir string) ([]byte, map[string][2]int, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	spans := map[string][2]int{}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		rel, _ := filepath.Rel(dir, p)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "gocache/" + rel, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)})
		tw.Flush()
		spans[rel] = [2]int{buf.Len(), len(b)}
		tw.Write(b)
	}
	tw.Close()
	return buf.Bytes(), spans, nil
}

func compress(tb []byte, size int) ([][]byte, time.Duration) {
	n := (len(tb) + size - 1) / size
	out := make([][]byte, n)
	t0 := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
			for i := range next {
				out[i] = enc.EncodeAll(tb[i*size:min(len(tb), (i+1)*size)], nil)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, time.Since(t0)
}

func decompress(frames [][]byte) time.Duration {
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	defer dec.Close()
	t0 := time.Now()
	var buf []byte
	for _, f := range frames {
		buf, _ = dec.DecodeAll(f, buf[:0])
	}
	return time.Since(t0)
}
