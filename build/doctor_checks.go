package build

import (
	"os"
	"path/filepath"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// The doctor checks that need more than the cache directory (oci,
// envinject, the melange command line). The cache directory's own checks
// are mount.Layout.Doctor.

type check = mount.Check

// checkRunner says whether the cache writes of a build on melange's runner
// reach the host.
func checkRunner(m MelangeArgs, getenv func(string) string) check {
	switch m.Runner {
	case "qemu":
		if getenv(qemuVirtiofsEnv) == "1" {
			return check{Name: "runner", Status: mount.CheckPass, Message: "qemu runner with QEMU_USE_VIRTIOFS=1: cache writes reach the host"}
		}
		return check{Name: "runner", Status: mount.CheckFail,
			Message: "the qemu runner without QEMU_USE_VIRTIOFS=1 mounts the cache dir read-only under an overlay: everything the build writes to the caches is discarded",
			Fix:     "export QEMU_USE_VIRTIOFS=1 before melange build (or use the bubblewrap runner)"}
	case "docker":
		return check{Name: "runner", Status: mount.CheckPass, Message: "docker runner: binds the cache dir read-write; the guest writes as root unless run-as is set, so --owner should be that user (0:0 by default)"}
	case "", "bubblewrap":
		return check{Name: "runner", Status: mount.CheckPass, Message: "bubblewrap runner (melange's default on Linux): binds the cache dir read-write as the user who runs melange"}
	}
	return check{Name: "runner", Status: mount.CheckWarn, Message: "unknown runner " + m.Runner + ": cannot tell whether cache writes survive the build"}
}

// checkJournal reports an interrupted restore.
func checkJournal(l mount.Layout) check {
	if _, err := os.Stat(l.Dir); err != nil {
		return check{Name: "journal", Status: mount.CheckSkip, Message: "no cache directory"}
	}
	if p := oci.Pending(l); p != nil {
		msg := "an interrupted pull left a journal or staging dir in " + filepath.Join(l.State) + ": the caches may be half swapped"
		if p.Invalid != "" || p.Error != "" {
			msg = p.Describe() // an unusable journal, or a failed swap being undone
		}
		return check{Name: "journal", Status: mount.CheckFail, Message: msg, Fix: p.Fix(l)}
	}
	return check{Name: "journal", Status: mount.CheckPass, Message: "no interrupted restore"}
}
