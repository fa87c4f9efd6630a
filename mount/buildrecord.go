package mount

import (
	"time"

	"github.com/melcache/melcache/internal/fsutil"
)

// buildRecordFile records how the last `melcache build` pointed Go at the
// caches, so that doctor can evaluate the config as that build ran it.
const buildRecordFile = "last-build.json"

// BuildRecord is how a `melcache build` ran melange on a config.
type BuildRecord struct {
	// Config is the absolute path of the melange config as given.
	Config string `json:"config"`
	// Time is when melange started.
	Time time.Time `json:"time"`
	// EnvFile is the env-file melcache passed (a temporary file, gone
	// after the build) and EnvVars its KEY=VALUE lines; both empty with
	// Rewrite.
	EnvFile string   `json:"envFile,omitempty"`
	EnvVars []string `json:"envVars,omitempty"`
	// Rewrite says melange got a rewritten copy of the config (also
	// temporary): the config with Inject's edits, made with Offline,
	// Force and Set.
	Rewrite bool     `json:"rewrite,omitempty"`
	Offline bool     `json:"offline,omitempty"`
	Force   bool     `json:"force,omitempty"`
	Set     []string `json:"set,omitempty"`
	// UserEnvFiles are the --env-file arguments the user gave melange,
	// in order; they come after melcache's and win over it.
	UserEnvFiles []string `json:"userEnvFiles,omitempty"`
}

// WriteBuildRecord records rec as the last build.
//
// Durability: fsutil.SyncFile. The record only informs doctor; losing it to
// a crash brings back doctor's advice for step-by-step users.
func (l Layout) WriteBuildRecord(rec BuildRecord) error {
	return fsutil.WriteJSON(l.State, buildRecordFile, rec, fsutil.WriteOptions{Sync: fsutil.SyncFile, CreateDirs: true})
}

// LastBuildRecord returns the last build recorded, or nil when none was.
func (l Layout) LastBuildRecord() (*BuildRecord, error) {
	return fsutil.ReadJSON[BuildRecord](l.State, buildRecordFile)
}
