package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// A failed layer download is retried only when a retry can fix it (issue
// 11, finding 7): the transfer broke with a transient network error that no
// layer below already retried to exhaustion. A file that cannot be written
// (ENOSPC, ENAMETOOLONG, EACCES) or content that does not decode or match
// its digest fails the same way on every download, so those are final and
// no byte is fetched twice for them.

// transferError marks a failure of the blob transfer itself: the store's
// ReadBlob or its reader failed. cause is the store's own error, which
// decides whether a new download may help.
type transferError struct{ err, cause error }

func (e *transferError) Error() string { return e.err.Error() }
func (e *transferError) Unwrap() error { return e.err }

// LocalError is a failure to write the restored files on this machine:
// out of space, a name too long for the file system, no permission. A
// download cannot fix it.
type LocalError struct{ Err error }

func (e *LocalError) Error() string { return e.Err.Error() }
func (e *LocalError) Unwrap() error { return e.Err }

// classifyLayerErr sorts an error from one download of a layer: a transfer
// failure (cr saw the store's reader fail) becomes a transferError, a
// file system error a LocalError; the rest (VerifyErrors, cancellation)
// are returned as they are.
func classifyLayerErr(err error, cr *countReader) error {
	var te *transferError
	var ve *VerifyError
	var pe *fs.PathError
	switch {
	case err == nil || errors.As(err, &te):
		return err
	case cr.err != nil && !errors.As(err, &ve):
		return &transferError{err: err, cause: cr.err}
	case errors.As(err, &pe):
		return &LocalError{Err: localHint(err)}
	}
	return err
}

// localHint adds what to do for the local errors a pull meets in practice.
func localHint(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w (free space on the cache dir's file system, or prune it first)", err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("%w (the snapshot holds a path too long for this file system under this cache dir)", err)
	}
	return err
}

// retryLayer reports whether a failed layer download is worth starting
// again.
func retryLayer(err error) bool {
	var te *transferError
	return errors.As(err, &te) && retryableErr(te.cause)
}
