package envinject

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// StdinName names standard input ("-") in results and messages, as gofmt
// does.
const StdinName = "<standard input>"

// FilesOptions configure Files.
type FilesOptions struct {
	// Options are Inject's, the same for every file.
	Options Options
	// Write replaces each changed file in place, atomically, keeping its
	// mode and (when this process may) its owner; a symlink is written
	// through to its target.
	Write bool
	// Jobs bounds the files processed at once; 0 means GOMAXPROCS.
	Jobs int
	// Stdin is read for the file "-"; nil means os.Stdin.
	Stdin io.Reader
}

// FileResult is one file's outcome in Files.
type FileResult struct {
	// Name is the file as given, or StdinName for "-".
	Name string
	// Src is the file's content before Inject.
	Src []byte
	// Result is Inject's result (zero when Skipped or Err).
	Result Result
	// Skipped: the file is YAML without a top-level package: (not a
	// melange config); nothing was done.
	Skipped bool
	// Err is the file's own failure: unreadable, bad input (named
	// file:line:col), or the write failed. Other files still run.
	Err error
}

// Files runs Inject over files, at most o.Jobs at a time, and with
// o.Write replaces the changed ones. Results are in the order of files.
// Each file's failure is in its result; the error is ctx's when it was
// cancelled before every file ran.
func Files(ctx context.Context, files []string, o FilesOptions) ([]FileResult, error) {
	jobs := o.Jobs
	if jobs < 1 {
		jobs = runtime.GOMAXPROCS(0)
	}
	stdin := lockedReader{r: o.Stdin}
	if stdin.r == nil {
		stdin.r = os.Stdin
	}
	res := make([]FileResult, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, name := range files {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			res[i] = injectFile(name, o, &stdin)
			return nil
		})
	}
	return res, g.Wait()
}

// lockedReader lets concurrent workers read "-" without racing.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) readAll() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return io.ReadAll(l.r)
}

// injectFile reads one file, injects and, with o.Write, writes it back.
func injectFile(name string, o FilesOptions, stdin *lockedReader) FileResult {
	fr := FileResult{Name: name}
	var mode fs.FileMode
	target := name
	var err error
	if name == "-" {
		fr.Name = StdinName
		fr.Src, err = stdin.readAll()
	} else {
		if o.Write {
			// Write through a symlink to its target, not over the link.
			if t, e := filepath.EvalSymlinks(name); e == nil {
				target = t
			}
		}
		var fi fs.FileInfo
		if fi, err = os.Stat(target); err == nil {
			mode = fi.Mode()
			fr.Src, err = os.ReadFile(target)
		}
	}
	if err != nil {
		fr.Err = err
		return fr
	}
	res, err := Inject(fr.Src, o.Options)
	var pe *Error
	switch {
	case errors.Is(err, ErrNotMelange):
		fr.Skipped = true
		return fr
	case errors.As(err, &pe):
		fr.Err = fmt.Errorf("%s:%v", fr.Name, err)
		return fr
	case err != nil:
		fr.Err = fmt.Errorf("%s: %v", fr.Name, err)
		return fr
	}
	fr.Result = res
	if res.Changed && o.Write {
		if err := writeFileAtomic(target, res.Out, mode); err != nil {
			fr.Err = fmt.Errorf("%s: %w", fr.Name, err)
		}
	}
	return fr
}

// CollectYAML expands directory arguments to the *.yaml and *.yml files
// under them, in lexical order. Hidden directories (.git, .melcache) and
// symlinks met while walking are skipped; named files (and "-") are taken
// as given. errs are the arguments and entries that could not be read.
func CollectYAML(args []string) (files []string, errs []error) {
	for _, a := range args {
		if a == "-" {
			files = append(files, a)
			continue
		}
		fi, err := os.Stat(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			if d.IsDir() {
				if p != a && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return files, errs
}
