package build

import (
	"errors"
	"fmt"

	"github.com/melcache/melcache/envinject"
)

// UsageError reports arguments the caller got wrong (a reference that does
// not parse, a key template that does not expand, a melange flag without
// its value). The CLI maps it to exit status 2.
type UsageError struct {
	// Flag names the argument at fault ("--pull"), or "" when Err says it.
	Flag string
	Err  error
}

func (e *UsageError) Error() string {
	if e.Flag == "" {
		return e.Err.Error()
	}
	return e.Flag + ": " + e.Err.Error()
}

func (e *UsageError) Unwrap() error { return e.Err }

// usageErrorf returns a *UsageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// configError names the config file in an envinject error: file:line:col
// for a positioned error, "file: msg" for another.
func configError(path string, err error) error {
	var pe *envinject.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%w", path, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}
