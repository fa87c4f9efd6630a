package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/melcache/melcache/envinject"
)

// CheckPreloadInput fails on bad preload input (no or two sources, a
// config that is not melange YAML, a missing or non-directory source tree)
// before anything is created: Preload creates the cache dir and its state,
// and a failed command must leave the filesystem as it was. Preload calls
// it first; a caller that recovers or locks the cache dir before Preload
// calls it before that.
func CheckPreloadInput(o PreloadOptions) error {
	if (o.Source == "") == (o.Config == "") {
		return errors.New("preload: give either a source directory or a melange config")
	}
	if o.Config != "" {
		if _, err := envinject.ReadConfig(o.Config); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		return nil
	}
	fi, err := os.Stat(o.Source)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("preload: source directory %s does not exist", o.Source)
	case err != nil:
		return fmt.Errorf("preload: source %w", err)
	case !fi.IsDir():
		return fmt.Errorf("preload: source %s is not a directory", o.Source)
	}
	return nil
}
