package oci

import (
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BaseRef is a parsed --base: a tag or digest in the push's own store, or
// in another repository of the same registry.
type BaseRef struct {
	// Repository is "host[:port]/path" of another repository; "" means
	// the push's own store.
	Repository string
	// Ref is a tag or a "sha256:..." digest.
	Ref string
}

// ParseBase parses --base: "TAG", "@sha256:HEX" (or "sha256:HEX") in the
// push's own store, or "HOST/REPO:TAG" / "HOST/REPO@sha256:HEX" in another
// repository of the same registry. A tag never holds '/', so a '/' means a
// repository.
func ParseBase(s string) (BaseRef, error) {
	switch {
	case s == "":
		return BaseRef{}, errors.New("--base: empty reference")
	case strings.Contains(s, "/"):
		r, err := ParseRef(s, RefOptions{})
		if err != nil {
			return BaseRef{}, fmt.Errorf("--base: %w", err)
		}
		if r.Kind != RefRegistry {
			return BaseRef{}, fmt.Errorf("--base %s: not a registry repository (a layout's base is a tag or digest in the same layout)", s)
		}
		if r.Reference() == "" {
			return BaseRef{}, fmt.Errorf("--base %s: names no tag or digest", s)
		}
		return BaseRef{Repository: r.Repo.String(), Ref: r.Reference()}, nil
	}
	d := strings.TrimPrefix(s, "@")
	if strings.HasPrefix(d, "sha256:") {
		if _, err := v1.NewHash(d); err != nil {
			return BaseRef{}, fmt.Errorf("--base %s: %v", s, err)
		}
		return BaseRef{Ref: d}, nil
	}
	if err := checkTag(s); err != nil {
		return BaseRef{}, fmt.Errorf("--base: %v", err)
	}
	return BaseRef{Ref: s}, nil
}
