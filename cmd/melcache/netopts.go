package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/melcache/melcache/oci"
)

// storeOptions are the options every command that talks to a store opens
// it with: the TLS choices from its flags, and the network timeouts from
// MELCACHE_CONNECT_TIMEOUT, MELCACHE_HEADER_TIMEOUT and
// MELCACHE_IDLE_TIMEOUT (docs/stores.md). A bad value is a usage error.
func storeOptions(insecure bool, caCert string, log *slog.Logger) (oci.StoreOptions, error) {
	to, err := netTimeouts()
	if err != nil {
		return oci.StoreOptions{}, err
	}
	return oci.StoreOptions{Insecure: insecure, CACert: caCert, Logger: log, Timeouts: to}, nil
}

// openRepo opens the store of a repository reference (REPO, oci:PATH, or
// "" for the embedded store) for ls and gc, which act on every tag and so
// refuse a tag or digest (hint says what to use instead, or "").
func openRepo(ctx context.Context, g *globals, cmd, raw string, insecure bool, caCert, hint string) (oci.Store, error) {
	ref, err := oci.ParseRef(raw, oci.RefOptions{Insecure: insecure})
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	if ref.Tag != "" || ref.Digest != "" {
		return nil, usageErrorf("%s takes a repository, not a tag or digest: %s%s", cmd, raw, hint)
	}
	so, err := storeOptions(insecure, caCert, g.log)
	if err != nil {
		return nil, err
	}
	s, _, err := oci.OpenStore(ctx, ref, so)
	return s, err
}

// netTimeouts are the network timeouts from the environment; a bad value is
// a usage error.
func netTimeouts() (oci.Timeouts, error) {
	to, err := oci.TimeoutsFromEnv(os.Getenv)
	if err != nil {
		return oci.Timeouts{}, usageErrorf("%v", err)
	}
	return to, nil
}
