package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestBeneathSubdirReplacedConcurrently: while one directory is removed and
// made again over and over, concurrent Lstats of an entry in it see the
// entry or its absence, never an error from a descriptor another lookup
// closed meanwhile (EBADF) or whose number was reused (ENOTDIR, another
// directory's entry).
func TestBeneathSubdirReplacedConcurrently(t *testing.T) {
	dir := t.TempDir()
	b := openTestBeneath(t, dir)
	ab := filepath.Join(dir, "ab")
	const rounds = 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the build: the shard removed and made again
		defer wg.Done()
		defer close(stop)
		for range rounds {
			os.RemoveAll(ab)
			os.Mkdir(ab, 0o755)
			os.WriteFile(filepath.Join(ab, "entry"), []byte("x"), 0o644)
		}
	}()
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Other lookups open and close descriptors meanwhile, so
				// that a closed number is soon reused.
				b.ReadSmall("ab/entry", 10)
				if _, err := b.Lstat("ab/entry"); err != nil && !errors.Is(err, fs.ErrNotExist) {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Lstat ab/entry while ab is made again: %v", err)
	}
}
