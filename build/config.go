package build

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/melcache/melcache/cacheprog"
	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// DefaultTag is the tag used when neither a reference nor a key names one.
const DefaultTag = "latest"

// Config is what one build does: the melange config, the cache dir, where
// snapshots come from and go to, and how Go is pointed at the caches.
type Config struct {
	// Layout is the cache directory, given to melange as --cache-dir.
	Layout mount.Layout
	// Config is the melange YAML file; it is never edited.
	Config string
	// Melange is the melange binary (see FindMelange).
	Melange string
	// MelangeArgs are the arguments after "--" (see ParseMelangeArgs).
	MelangeArgs MelangeArgs

	// Pull is the snapshot restored first (HOST/REPO[:TAG], oci:PATH[:TAG]);
	// "" restores nothing.
	Pull string
	// RestoreKeys are tag-prefix templates the pull falls back to.
	RestoreKeys []string
	// Push is where the delta goes after a successful build; "" pushes
	// nothing.
	Push string
	// Key is the tag template for Pull and Push references without a tag.
	Key string
	// Go pins the Go version {go} and the snapshot's goVersion use (--go);
	// "" reads it from Config and the apk repositories (GoResolver).
	Go string
	// Insecure allows plain HTTP and unverified TLS to a non-loopback
	// registry; CACert is a PEM file of extra trusted CAs.
	Insecure bool
	CACert   string
	// Timeouts bound a silent registry (oci.Timeouts; zero fields take the
	// defaults).
	Timeouts oci.Timeouts

	// Strict makes a cache problem fail the build instead of a warning.
	Strict bool
	// PushOnFailure pushes even when melange fails.
	PushOnFailure bool
	// Preload downloads the modules Config builds before the build.
	Preload bool
	// Rewrite gives melange a temporary rewritten copy of Config instead of
	// an env-file; Force (with Rewrite) replaces the YAML's own values.
	Rewrite bool
	Force   bool
	// Offline also sets GOPROXY=off, GOTOOLCHAIN=local, GOFLAGS=-mod=mod.
	Offline bool
	// Set are extra variables for the build's environment.
	Set []envinject.Var
	// CacheProg serves the guest's Go build cache through GOCACHEPROG: a
	// forwarder in the guest, the host's cacheprog.Bridge on a socket in
	// DIR/.melcache (docs/cacheprog.md). CacheProgBinary is the forwarder
	// (a static melcache for the guest's arch); "" means the running
	// binary when it is one.
	CacheProg       bool
	CacheProgBinary string
}

// SourceDir is where the build's relative files are resolved
// ({hash:FILE}, --preload's sources, a git-checkout of a relative path), as
// melange resolves them: melange's --source-dir when given, else the
// config's directory (melange's default for --source-dir, pkg/cli/build.go).
func (c Config) SourceDir() string {
	if c.MelangeArgs.SourceDir != "" {
		return c.MelangeArgs.SourceDir
	}
	return filepath.Dir(c.Config)
}

// Options are how Run talks to its surroundings.
type Options struct {
	// Runner runs melange; nil means an ExecRunner on os.Stdout and
	// os.Stderr.
	Runner Runner
	// Now is the clock for the mark and the timings; nil means time.Now.
	Now func() time.Time
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
	// Warn receives each warning as it happens (they are also in
	// Report.Warnings); nil drops them.
	Warn func(msg string)
	// Notice receives messages that are neither warnings nor log lines
	// (a pull that found no snapshot); nil drops them.
	Notice func(msg string)
	// LockOptions configure waiting for the cache lock.
	LockOptions mount.LockOptions
	// Progress, when set, makes a progress sink for each transfer; Run
	// calls its Wait when the transfer ends.
	Progress func() Progress
	// Getenv reads the environment (QEMU_USE_VIRTIOFS); nil means
	// os.Getenv.
	Getenv func(string) string
}

// Progress receives one transfer's progress and waits for its display to
// finish.
type Progress interface {
	oci.TransferProgress
	Wait()
}

func (o *Options) now() time.Time { return clock(o.Now)() }

func (o *Options) log() *slog.Logger { return logger(o.Log) }

// clock returns now, or time.Now when now is nil.
func clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// logger returns l, or a logger that discards everything when l is nil.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l
}

func (o *Options) getenv(k string) string {
	if o.Getenv == nil {
		return os.Getenv(k)
	}
	return o.Getenv(k)
}

func (o *Options) notice(msg string) {
	if o.Notice != nil {
		o.Notice(msg)
	}
}

// Report is the outcome of one Run; the CLI prints it as a table or JSON.
type Report struct {
	Config  string `json:"config"`
	Dir     string `json:"dir"`
	Melange string `json:"melange"`
	// Command is the melange command line that ran.
	Command []string `json:"command"`
	// ExitCode is melange's exit status (128+N for signal N); -1 when
	// melange did not run.
	ExitCode int `json:"exitCode"`
	// Pull is the restore's result; PullMiss says no snapshot matched.
	Pull     *oci.Result `json:"pull,omitempty"`
	PullMiss bool        `json:"pullMiss,omitempty"`
	// Preloaded counts modules Preload downloaded.
	Preloaded *int `json:"preloaded,omitempty"`
	// Hits and Misses are GOCACHE use marks since the pre-build mark
	// (mount.Layout.Use); nil when the mark failed.
	// They count every class of entry; most are bookkeeping.
	Hits   *int `json:"hits,omitempty"`
	Misses *int `json:"misses,omitempty"`
	// CompileActions are the packages compiled (Run) and taken from the
	// cache (Reused): what the cache saved. ModuleIndex, Executables and
	// OtherEntries are Go's bookkeeping entries, not compiles
	// (mount.BuildUse). All nil when the mark failed.
	CompileActions *mount.ActionUse `json:"compileActions,omitempty"`
	ModuleIndex    *mount.ActionUse `json:"moduleIndex,omitempty"`
	Executables    *mount.ActionUse `json:"executables,omitempty"`
	OtherEntries   *mount.ActionUse `json:"otherEntries,omitempty"`
	// CacheWasEmpty says the build cache held nothing before the build.
	CacheWasEmpty bool `json:"cacheWasEmpty,omitempty"`
	// ModulesDownloaded counts module zips that appeared in gomodcache
	// during the build: modules the cache did not have.
	ModulesDownloaded int `json:"modulesDownloaded"`
	// BytesAdded is the growth of gomodcache plus gocache during the build
	// (negative when Go trimmed more than it wrote).
	BytesAdded int64 `json:"bytesAdded"`
	// BuildSeconds is melange's wall time; TotalSeconds everything.
	BuildSeconds float64 `json:"buildSeconds"`
	TotalSeconds float64 `json:"totalSeconds"`
	// GoModCache and GoCache are the cache paths the build really used.
	GoModCache string `json:"gomodcache"`
	GoCache    string `json:"gocache"`
	// Push is the push's result; PushSkipped says why there was none.
	Push        *oci.Result `json:"push,omitempty"`
	PushSkipped string      `json:"pushSkipped,omitempty"`
	Warnings    []string    `json:"warnings,omitempty"`
	// CacheProg is what the --cacheprog bridge served; nil without it.
	CacheProg *cacheprog.Report `json:"cacheprog,omitempty"`
}
