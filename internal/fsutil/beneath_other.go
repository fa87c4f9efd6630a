//go:build !linux

package fsutil

import (
	"errors"
	"os"
)

type beneath struct{}

// OpenBeneath needs Linux's openat2.
func OpenBeneath(*os.Root) (*Beneath, error) { return nil, errors.ErrUnsupported }

func (b *Beneath) Close() error { return nil }

func (b *Beneath) ReadSmall(name string, max int) ([]byte, EntryInfo, error) {
	return nil, EntryInfo{}, errors.ErrUnsupported
}

func (b *Beneath) Lstat(name string) (EntryInfo, error) { return EntryInfo{}, errors.ErrUnsupported }
