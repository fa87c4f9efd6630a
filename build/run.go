package build

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// qemuVirtiofsEnv makes melange's qemu runner share the cache dir with
// virtiofs; without it the runner mounts it read-only under an overlay and
// the build's writes are thrown away (docs/background.md, "Runners").
const qemuVirtiofsEnv = "QEMU_USE_VIRTIOFS"

// run is one Run: the steps of docs/architecture.md "Data flow" (6. Build), each a library
// call (mount, oci, envinject). It only sequences them, applies the failure
// policy and fills in the report.
type run struct {
	cfg Config
	o   Options
	log *slog.Logger

	ctx      context.Context   // cancelled when the caller is interrupted
	src      []byte            // the config's bytes
	cacheOK  bool              // the cache dir is prepared and usable
	lock     *mount.Lock       // held shared from the mark to the push
	markTime time.Time         // zero when the mark failed
	tmp      string            // temporary dir for the env-file or rewritten config
	created  []fsutil.Created  // what prepare created, for undoPrepare
	goVer    *GoResolver       // the Go version the build uses, read once
	cp       *cacheProg        // --cacheprog, when this build uses it
	injected bool              // inject ran (it runs again when cacheprog fails)
	record   mount.BuildRecord // how melange is pointed at the caches, for doctor
	report   Report
}

// endpoints are the opened --pull and --push references.
type endpoints struct {
	pullStore   oci.Store
	pullRef     string
	restoreKeys []string
	pushStore   oci.Store
	pushTag     string
}

// Run runs one `melcache build`: prepare the cache dir, pull, preload,
// mark, point Go at the caches (an env-file, or a rewritten copy of the
// config), run melange under the shared cache lock, measure, and push the
// delta when melange succeeded.
//
// The returned Report is never nil; its ExitCode is melange's status, -1
// when melange did not run. A non-zero melange status is not an error: the
// caller decides what it means. err is bad input (a *UsageError for the
// caller's arguments), a cache problem under cfg.Strict, an interrupt
// before melange started, or a melange that could not be started.
func Run(ctx context.Context, cfg Config, opts Options) (*Report, error) {
	if opts.Runner == nil {
		opts.Runner = ExecRunner{Log: opts.Log}
	}
	b := &run{cfg: cfg, o: opts, log: opts.log(), ctx: ctx}
	b.goVer = NewGoResolver(GoVersionOptions{Pin: cfg.Go, Config: cfg.Config,
		Repositories: cfg.MelangeArgs.Repositories, Arch: cfg.MelangeArgs.Arch})
	b.report = Report{Config: cfg.Config, Dir: cfg.Layout.Dir, Melange: cfg.Melange, ExitCode: -1}
	err := b.run(ctx)
	return &b.report, err
}

func (b *run) run(ctx context.Context) (err error) {
	start := b.o.now()
	ep, err := b.checkInput(ctx)
	if err != nil {
		return err
	}
	b.tmp, err = os.MkdirTemp("", "melcache-build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	// After the lock's release (deferred below, run first).
	defer func() {
		if err != nil && b.report.ExitCode < 0 {
			b.undoPrepare()
		}
	}()
	defer func() {
		if b.lock != nil {
			_ = b.lock.Unlock()
		}
	}()
	// Point Go at the caches first: its errors are bad input (Set, the
	// config), which must fail before anything changes.
	config, extra, err := b.inject()
	if err != nil {
		return err
	}
	if err := b.warmUp(ctx, ep); err != nil {
		return err
	}
	if ok, err := b.startCacheProg(ctx); err != nil {
		return err
	} else if !ok {
		// Point melange at the caches again, without GOCACHEPROG.
		if config, extra, err = b.inject(); err != nil {
			return err
		}
	}
	code, err := b.melange(ctx, config, extra)
	b.stopCacheProg()
	if err != nil {
		return err
	}
	pushErr := b.push(ctx, ep, code)
	b.report.TotalSeconds = b.o.now().Sub(start).Seconds()
	return pushErr
}

// checkInput fails on bad input before anything changes: the config must
// be a melange config, the key templates must expand and the references
// parse. It opens the stores.
func (b *run) checkInput(ctx context.Context) (ep endpoints, err error) {
	b.src, err = os.ReadFile(b.cfg.Config)
	if err != nil {
		return ep, fmt.Errorf("melange config: %w", err)
	}
	if _, err := envinject.EffectiveCaches(b.src, nil); err != nil {
		return ep, configError(b.cfg.Config, err)
	}
	if b.cfg.Go != "" {
		if _, err := ParseGoVersion(b.cfg.Go); err != nil {
			return ep, err
		}
	}
	if ep.pullStore, ep.pullRef, err = b.openRef(ctx, b.cfg.Pull, "--pull"); err != nil {
		return ep, err
	}
	if ep.pushStore, ep.pushTag, err = b.openRef(ctx, b.cfg.Push, "--push"); err != nil {
		return ep, err
	}
	if ep.restoreKeys, err = ExpandRestoreKeys(b.cfg.RestoreKeys, b.keyOptions()); err != nil {
		return ep, err
	}
	if ep.pushStore != nil && ep.pushTag == "" {
		ep.pushTag = DefaultTag
	}
	if b.cfg.MelangeArgs.Runner == "qemu" && b.o.getenv(qemuVirtiofsEnv) != "1" {
		msg := "--runner qemu without QEMU_USE_VIRTIOFS=1: melange mounts the cache dir read-only with an overlay and discards what the build writes"
		if ep.pushStore != nil {
			msg += ", so nothing new can be pushed"
		}
		b.warn(msg)
	}
	return ep, b.checkCacheProg()
}

// warmUp readies the cache dir for melange: prepare, pull, take the shared
// lock, preload, mark. Each step runs only while the cache is usable.
func (b *run) warmUp(ctx context.Context, ep endpoints) error {
	if err := b.prepare(ctx); err != nil {
		return err
	}
	if b.cacheOK && ep.pullStore != nil {
		pull := b.pull
		if b.cp != nil {
			pull = b.pullLazy // gocache object by object, through the bridge
		}
		if err := pull(ctx, ep.pullStore, ep.pullRef, ep.restoreKeys); err != nil {
			return err
		}
	}
	// Hold the lock shared until after the push: pulls, prunes and cleans
	// by other processes wait; other builds may share it.
	if b.cacheOK {
		if err := b.lockShared(ctx); err != nil {
			return err
		}
	}
	if b.cfg.Preload && b.cacheOK {
		if err := b.preload(ctx); err != nil {
			return err
		}
	}
	if b.cacheOK {
		return b.mark(ctx)
	}
	return nil
}

// melange runs melange (unless interrupted meanwhile) and measures what it
// added to the caches.
func (b *run) melange(ctx context.Context, config string, extra []string) (int, error) {
	before := measureCaches(b.cfg.Layout)
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("interrupted before melange started: %w", err)
	}
	argv := []string{b.cfg.Melange, "build", config, "--cache-dir", b.cfg.Layout.Dir}
	argv = append(argv, extra...)
	argv = append(argv, b.cfg.MelangeArgs.Args...)
	b.report.Command = argv
	b.log.Info("running melange", "command", joinArgs(argv))
	t0 := b.o.now()
	b.recordBuild(t0)
	code, err := b.o.Runner.Run(ctx, argv)
	b.report.BuildSeconds = b.o.now().Sub(t0).Seconds()
	b.report.ExitCode = code
	if err != nil {
		return code, err
	}
	after := measureCaches(b.cfg.Layout)
	b.report.ModulesDownloaded = after.zips - before.zips
	b.report.BytesAdded = after.bytes - before.bytes
	if !b.markTime.IsZero() {
		if use, err := b.cfg.Layout.Use(b.markTime); err != nil {
			b.warn(fmt.Sprintf("counting cache hits: %v", err))
		} else {
			b.report.Hits, b.report.Misses = &use.Hits, &use.Misses
			b.report.CompileActions, b.report.ModuleIndex = &use.CompileActions, &use.ModuleIndex
			b.report.Executables, b.report.OtherEntries = &use.Executables, &use.Other
			b.report.CacheWasEmpty = use.EmptyBefore
		}
	}
	return code, nil
}

// push pushes the delta when there is somewhere to push it and melange
// succeeded (or PushOnFailure). It does not stop when ctx is cancelled:
// the build's result is worth keeping.
func (b *run) push(ctx context.Context, ep endpoints, code int) error {
	switch {
	case ep.pushStore == nil:
		return nil
	case code != 0 && !b.cfg.PushOnFailure:
		b.report.PushSkipped = fmt.Sprintf("melange failed (exit %d); --push-on-failure pushes anyway", code)
		b.log.Info("not pushing: " + b.report.PushSkipped)
		return nil
	case !b.cacheOK:
		b.report.PushSkipped = "the cache directory is not usable"
		return nil
	}
	return b.pushDelta(context.WithoutCancel(ctx), ep.pushStore, ep.pushTag, ep.restoreKeys)
}

// recordBuild writes how melange is pointed at the caches in the cache
// dir's state, for doctor. A failure to write it costs doctor's view of this
// build only: a warning.
func (b *run) recordBuild(t time.Time) {
	if !b.cacheOK {
		return
	}
	b.record.Time = t
	if err := b.cfg.Layout.WriteBuildRecord(b.record); err != nil {
		b.warn(fmt.Sprintf("recording the build for doctor: %v", err))
	}
}

// warn reports a warning at once and keeps it for the report.
func (b *run) warn(msg string) {
	b.report.Warnings = append(b.report.Warnings, msg)
	if b.o.Warn != nil {
		b.o.Warn(msg)
	}
}

// cacheProblem applies the failure policy to a cache problem: with Strict
// it is Run's error, otherwise a warning.
//
// An interrupt (SIGINT, SIGTERM) before melange starts is not a cache
// problem: the user asked to stop, so nothing more runs.
func (b *run) cacheProblem(step string, err error) error {
	// The library may name the step itself (mount's "preload: ..."): say
	// it once, not "preload: preload: ...".
	if msg := err.Error(); strings.HasPrefix(msg, step+": ") {
		err = &storeError{msg: strings.TrimPrefix(msg, step+": "), err: err}
	}
	if b.ctx.Err() != nil {
		return fmt.Errorf("%s: interrupted: %w", step, err)
	}
	if b.cfg.Strict {
		return fmt.Errorf("%s (--strict): %w", step, err)
	}
	b.warn(fmt.Sprintf("%s: %v; building without it", step, err))
	return nil
}
