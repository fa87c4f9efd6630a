package build

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// HostGoModCache returns this host's module cache, as `go env GOMODCACHE`
// prints it in the working directory with the caller's environment: the
// source `melcache prepare --from-host` seeds a cache dir from.
func HostGoModCache(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go env GOMODCACHE is empty")
	}
	return dir, nil
}
