package main

import (
	"github.com/spf13/cobra"

	"github.com/melcache/melcache/mount"
)

// cacheListFlag is --cache: the caches a command works on, from the
// registry (mount.AllProfiles), comma-separated or repeated.
type cacheListFlag struct{ names []string }

// register adds --cache with a usage line that ends with the default.
func (f *cacheListFlag) register(cmd *cobra.Command, what, def string) {
	cmd.Flags().StringArrayVar(&f.names, "cache", nil,
		what+": "+mount.AllCacheNames()+" or all, comma-separated (default: "+def+")")
}

// caches returns the named caches, nil when --cache was not given (the
// command's default); an unknown name is a usage error.
func (f *cacheListFlag) caches() ([]mount.Cache, error) {
	cs, err := mount.ParseCaches(f.names)
	if err != nil {
		return nil, usageErrorf("--cache: %v", err)
	}
	return cs, nil
}
