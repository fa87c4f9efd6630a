package main

import (
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

// netTimeouts are the network timeouts from the environment; a bad value is
// a usage error.
func netTimeouts() (oci.Timeouts, error) {
	to, err := oci.TimeoutsFromEnv(os.Getenv)
	if err != nil {
		return oci.Timeouts{}, usageErrorf("%v", err)
	}
	return to, nil
}
