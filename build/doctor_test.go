package build

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/mount"
)

// TestDoctorMelangeCommandLine: doctor reads melange's runner and
// --cache-dir from MELANGE_OPTS and the arguments after "--" (the later
// wins), and warns when --dir and --cache-dir differ.
func TestDoctorMelangeCommandLine(t *testing.T) {
	dir, other := filepath.Join(t.TempDir(), "d"), filepath.Join(t.TempDir(), "o")
	env := map[string]string{"MELANGE_OPTS": "--runner qemu --cache-dir " + other, "QEMU_USE_VIRTIOFS": "1"}
	rep, err := Doctor(context.Background(), DoctorOptions{Dir: dir, DirGiven: true,
		MelangeArgs: []string{"--runner", "bubblewrap"}, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]mount.Check{}
	for _, c := range rep.Checks {
		if _, ok := got[c.Name]; !ok {
			got[c.Name] = c
		}
	}
	if c := got["runner"]; c.Status != mount.CheckPass || !strings.Contains(c.Message, "bubblewrap") {
		t.Errorf("runner check %+v, want the bubblewrap runner given after --", c)
	}
	if c := got["dir"]; c.Status != mount.CheckWarn || !strings.Contains(c.Message, other) {
		t.Errorf("dir check %+v, want a warning naming melange's --cache-dir", c)
	}
	if rep.Dir != dir {
		t.Errorf("checked %s, want the given --dir %s", rep.Dir, dir)
	}

	// Without DirGiven, melange's --cache-dir is the dir checked.
	rep, err = Doctor(context.Background(), DoctorOptions{Dir: dir, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dir != other {
		t.Errorf("checked %s, want melange's --cache-dir %s", rep.Dir, other)
	}

	// A flag without its value is a usage error.
	_, err = Doctor(context.Background(), DoctorOptions{Dir: dir, MelangeArgs: []string{"--runner"}, Getenv: func(string) string { return "" }})
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Errorf("err %v, want a *UsageError", err)
	}
}
