package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// GoConfigEnv returns "XDG_CONFIG_HOME=DIR" for a config directory whose
// go/telemetry/mode is "off". Tests that run a go command (or melcache,
// which runs `go env`) with HOME in a test's temp dir add it: otherwise the
// go command writes telemetry counters under HOME/.config/go/telemetry and
// may start a detached child that keeps writing there after the command
// and the test have finished, so the temp dir's removal fails with
// "unlinkat …: directory not empty". The directory is shared (under
// FixturesDir) and world-readable, for tests that run as another user.
func GoConfigEnv(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(FixturesDir(), "xdg-config")
	mode := filepath.Join(dir, "go", "telemetry", "mode")
	if b, err := os.ReadFile(mode); err != nil || string(b) != "off" {
		if err := os.MkdirAll(filepath.Dir(mode), 0o755); err != nil {
			t.Fatal(err)
		}
		// Written whole and renamed: concurrent tests may read it.
		tmp, err := os.CreateTemp(filepath.Dir(mode), "mode-*")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tmp.WriteString("off"); err != nil {
			t.Fatal(err)
		}
		if err := tmp.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(tmp.Name(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp.Name(), mode); err != nil {
			t.Fatal(err)
		}
	}
	return "XDG_CONFIG_HOME=" + dir
}
