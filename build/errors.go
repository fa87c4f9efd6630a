package build

import (
	"errors"
	"fmt"
	"strings"

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
	msg := e.Err.Error()
	if e.Flag == "" {
		return msg
	}
	// An error that starts by naming the flag's value ("key \"go-{go}\":
	// ...", from oci.ExpandKey) says the flag once: "--key \"go-{go}\": ...",
	// not "--key: key \"go-{go}\": ...".
	if name := strings.TrimLeft(e.Flag, "-") + " "; strings.HasPrefix(msg, name) {
		return e.Flag + " " + strings.TrimPrefix(msg, name)
	}
	return e.Flag + ": " + msg
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
		// A copy with the file set: the one YAML error type, printed
		// "file:line:col: msg" wherever it ends up.
		named := *pe
		named.File = path
		return &named
	}
	return fmt.Errorf("%s: %w", path, err)
}
