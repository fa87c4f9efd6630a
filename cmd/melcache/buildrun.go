package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// buildRun is one `melcache build`: the steps of docs/architecture.md "build",
// each a library call (mount, oci, envinject); this file only sequences
// them, applies the failure policy and reports.
//
// Failure policy ("Concurrency and failure"): a cache problem never fails
// the build. Each one is a warning and the build runs with whatever the
// cache holds (cold, at worst), unless --strict, which fails before melange
// runs (or, for the push, after it). Bad input (the config, the flags) is
// not a cache problem: it fails at once.
type buildRun struct {
	g       *globals
	f       buildFlags
	layout  mount.Layout
	config  string
	melange string
	margs   melangeArgs

	ctx      context.Context // the command's: cancelled by SIGINT and SIGTERM
	src      []byte          // the config's bytes
	cacheOK  bool            // the cache dir is prepared and usable
	lock     *mount.Lock     // held shared from the mark to the push
	markTime time.Time       // zero when the mark failed
	tmp      string          // temporary dir for the env-file or rewritten config
	report   buildReport
}

// buildReport is what `melcache build --json` prints.
type buildReport struct {
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
	// Preloaded counts modules --preload downloaded.
	Preloaded *int `json:"preloaded,omitempty"`
	// Hits and Misses are GOCACHE use marks since the pre-build mark
	// (mount.Layout.Use); nil when the mark failed.
	Hits   *int `json:"hits,omitempty"`
	Misses *int `json:"misses,omitempty"`
	// ModulesDownloaded counts module zips that appeared in gomodcache
	// during the build: modules the cache did not have.
	ModulesDownloaded int `json:"modulesDownloaded"`
	// BytesAdded is the growth of gomodcache plus gocache during the build
	// (negative when Go trimmed more than it wrote).
	BytesAdded int64 `json:"bytesAdded"`
	// BuildSeconds is melange's wall time; TotalSeconds everything.
	BuildSeconds float64 `json:"buildSeconds"`
	TotalSeconds float64 `json:"totalSeconds"`
	// EffectiveCaches are the cache paths the build really used.
	GoModCache string `json:"gomodcache"`
	GoCache    string `json:"gocache"`
	// Push is the push's result; PushSkipped says why there was none.
	Push        *oci.Result `json:"push,omitempty"`
	PushSkipped string      `json:"pushSkipped,omitempty"`
	Warnings    []string    `json:"warnings,omitempty"`
}

func (b *buildRun) run(ctx context.Context) (err error) {
	start := time.Now()
	b.ctx = ctx
	b.report = buildReport{Config: b.config, Dir: b.layout.Dir, Melange: b.melange, ExitCode: -1}
	b.src, err = os.ReadFile(b.config)
	if err != nil {
		return fmt.Errorf("melange config: %w", err)
	}
	// Bad input fails before anything changes: the config must be a melange
	// config and the key templates must expand.
	if _, err := envinject.EffectiveCaches(b.src, nil); err != nil {
		return configError(b.config, err)
	}
	pullStore, pullRef, err := b.openRef(ctx, b.f.pull, "--pull")
	if err != nil {
		return err
	}
	pushStore, pushTag, err := b.openRef(ctx, b.f.push, "--push")
	if err != nil {
		return err
	}
	restoreKeys, err := b.restoreKeys()
	if err != nil {
		return err
	}
	if pushStore != nil && pushTag == "" {
		pushTag = defaultTag
	}
	if b.margs.runner == "qemu" && os.Getenv("QEMU_USE_VIRTIOFS") != "1" {
		msg := "--runner qemu without QEMU_USE_VIRTIOFS=1: melange mounts the cache dir read-only with an overlay and discards what the build writes"
		if pushStore != nil {
			msg += ", so nothing new can be pushed"
		}
		b.warn(msg)
	}

	b.tmp, err = os.MkdirTemp("", "melcache-build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	defer func() {
		if b.lock != nil {
			_ = b.lock.Unlock()
		}
	}()

	// Point Go at the caches first: its errors are bad input (--set, the
	// config), which must fail before anything changes.
	config, extra, err := b.inject()
	if err != nil {
		return err
	}

	// 1. prepare.
	if err := b.prepare(ctx); err != nil {
		return err
	}
	// 2. pull.
	if b.cacheOK && pullStore != nil {
		if err := b.pull(ctx, pullStore, pullRef, restoreKeys); err != nil {
			return err
		}
	}
	// 3. hold the lock shared until after the push: pulls, prunes and
	// cleans by other processes wait; other builds may share it.
	if b.cacheOK {
		if err := b.lockShared(ctx); err != nil {
			return err
		}
	}
	// 4. preload.
	if b.f.preload && b.cacheOK {
		res, err := b.layout.Preload(ctx, mount.PreloadOptions{Config: b.config, Lock: b.lock, Log: b.g.log})
		var te *mount.ToolchainError
		switch {
		case errors.As(err, &te):
			return err // bad input: the build cannot succeed
		case err != nil:
			if err := b.cacheProblem("preload", err); err != nil {
				return err
			}
		default:
			n := 0
			for _, m := range res.Modules {
				n += m.New
			}
			b.report.Preloaded = &n
		}
	}
	// 5. mark.
	if b.cacheOK {
		rec, err := b.layout.Mark(ctx, mount.MarkOptions{Now: time.Now, Lock: b.lock})
		if err != nil {
			if err := b.cacheProblem("mark", err); err != nil {
				return err
			}
		} else {
			b.markTime = rec.Time
		}
	}
	before := measureCaches(b.layout)

	// 6. melange (unless interrupted meanwhile).
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted before melange started: %w", err)
	}
	argv := []string{b.melange, "build", config, "--cache-dir", b.layout.Dir}
	argv = append(argv, extra...)
	argv = append(argv, b.margs.args...)
	b.report.Command = argv
	t0 := time.Now()
	code, runErr := b.runMelange(argv)
	b.report.BuildSeconds = time.Since(t0).Seconds()
	b.report.ExitCode = code
	if runErr != nil {
		return runErr
	}

	// 7. report.
	after := measureCaches(b.layout)
	b.report.ModulesDownloaded = after.zips - before.zips
	b.report.BytesAdded = after.bytes - before.bytes
	if !b.markTime.IsZero() {
		if use, err := b.layout.Use(b.markTime); err != nil {
			b.warn(fmt.Sprintf("counting cache hits: %v", err))
		} else {
			b.report.Hits, b.report.Misses = &use.Hits, &use.Misses
		}
	}

	// 8. push.
	var pushErr error
	switch {
	case pushStore == nil:
	case code != 0 && !b.f.pushOnFailure:
		b.report.PushSkipped = fmt.Sprintf("melange failed (exit %d); --push-on-failure pushes anyway", code)
		b.g.log.Info("not pushing: " + b.report.PushSkipped)
	case !b.cacheOK:
		b.report.PushSkipped = "the cache directory is not usable"
	default:
		pushErr = b.pushDelta(context.WithoutCancel(ctx), pushStore, pushTag)
	}
	b.report.TotalSeconds = time.Since(start).Seconds()
	if err := b.printReport(); err != nil {
		return err
	}
	if pushErr != nil {
		return pushErr
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// warn prints a warning at once and keeps it for the report.
func (b *buildRun) warn(msg string) {
	b.report.Warnings = append(b.report.Warnings, msg)
	fmt.Fprintf(b.g.stderr, "melcache: warning: %s\n", msg)
}

// cacheProblem applies the failure policy to a cache problem: with --strict
// it is the command's error, otherwise a warning.
//
// An interrupt (SIGINT, SIGTERM) before melange starts is not a cache
// problem: the user asked to stop, so nothing more runs.
func (b *buildRun) cacheProblem(step string, err error) error {
	if b.ctx.Err() != nil {
		return fmt.Errorf("%s: interrupted: %w", step, err)
	}
	if b.f.strict {
		return fmt.Errorf("%s (--strict): %w", step, err)
	}
	b.warn(fmt.Sprintf("%s: %v; building without it", step, err))
	return nil
}

func (b *buildRun) lockOptions() mount.LockOptions {
	return mount.LockOptions{NoWait: b.f.noWait, OnWait: func(hs []mount.Holder) {
		fmt.Fprintf(b.g.stderr, "melcache: waiting for the lock on %s, held by %v\n", b.layout.Dir, hs)
	}}
}

// prepare prepares the cache dir unless it already is. mount.Prepare takes
// the lock exclusively (it may create and chown), so calling it on every
// build would make a second build on the same dir wait for the first one's
// melange to finish: builds are meant to share the lock.
func (b *buildRun) prepare(ctx context.Context) error {
	if prepared(b.layout) {
		b.cacheOK = true
		return nil
	}
	res, err := b.layout.Prepare(ctx, mount.PrepareOptions{Log: b.g.log, LockOptions: b.lockOptions()})
	if err != nil {
		return b.cacheProblem("prepare "+b.layout.Dir, err)
	}
	for _, w := range res.Warnings {
		b.warn(w)
	}
	b.cacheOK = true
	return nil
}

// prepared reports whether l is laid out and owned by the current user, so
// that Prepare would change nothing.
func prepared(l mount.Layout) bool {
	paths := []string{l.Dir, l.State, filepath.Join(l.CacheDir(mount.GoCache), "README")}
	for _, c := range l.Caches() {
		paths = append(paths, l.CacheDir(c))
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			return false
		}
	}
	return true
}

// openRef parses a --pull or --push reference and works out its tag (or
// digest) with --key, as push and pull do. An empty arg gives a nil store.
func (b *buildRun) openRef(ctx context.Context, arg, flag string) (oci.Store, string, error) {
	if arg == "" {
		return nil, "", nil
	}
	ref, err := oci.ParseRef(arg, oci.RefOptions{Insecure: b.f.insecure})
	if err != nil {
		return nil, "", usageErrorf("%s: %v", flag, err)
	}
	tag := ref.Tag
	if b.f.key != "" && tag == "" && ref.Digest == "" {
		if tag, err = b.expand(b.f.key); err != nil {
			return nil, "", usageErrorf("--key: %v", err)
		}
	}
	if ref.Digest != "" {
		if flag == "--push" {
			return nil, "", usageErrorf("--push needs a tag, not a digest: %s", arg)
		}
		tag = ref.Digest
	}
	so, err := storeOptions(b.f.insecure, b.f.caCert, b.g.log)
	if err != nil {
		return nil, "", err
	}
	s, _, err := oci.OpenStore(ctx, ref, so)
	if err != nil {
		var ph *oci.PlainHTTPError
		if errors.As(err, &ph) {
			return nil, "", usageErrorf("%s: %v", flag, err)
		}
		if err := b.cacheProblem("opening "+arg, err); err != nil {
			return nil, "", err
		}
		return nil, "", nil
	}
	return s, tag, nil
}

// expand expands a key template; {arch} comes from melange's --arch.
// Restore-key prefixes are expanded the same way (pull does the same).
func (b *buildRun) expand(tpl string) (string, error) {
	return oci.ExpandKey(tpl, oci.KeyOptions{Arch: b.margs.arch, Config: b.config})
}

func (b *buildRun) restoreKeys() ([]string, error) {
	var keys []string
	for _, k := range b.f.restoreKeys {
		for _, p := range strings.Split(k, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			e, err := b.expand(p)
			if err != nil {
				return nil, usageErrorf("--restore-keys: %v", err)
			}
			keys = append(keys, e)
		}
	}
	return keys, nil
}

func (b *buildRun) pull(ctx context.Context, s oci.Store, ref string, keys []string) error {
	if ref == "" && len(keys) == 0 {
		ref = defaultTag
	}
	o := oci.Options{RestoreKeys: keys, Log: b.g.log, LockOptions: b.lockOptions()}
	p := newTransferBars(b.g, b.f.json)
	o.Progress = p
	res, err := oci.Pull(ctx, b.layout, s, ref, o)
	p.Wait()
	switch {
	case err == nil:
		b.report.Pull = res
		b.g.log.Info("restored the caches", "from", res.Store, "tag", res.Tag, "resolved", res.Resolved, "files", res.FilesWritten)
		return nil
	case errors.Is(err, oci.ErrNotFound):
		// A miss: the first build of a key. Not even a warning.
		b.report.PullMiss = true
		fmt.Fprintf(b.g.stderr, "melcache: no snapshot for %s in %s (restore keys %q): building cold\n", ref, s, keys)
		return nil
	}
	return b.cacheProblem("pull from "+s.String(), err)
}

// lockShared takes the shared lock held through the build, after finishing
// an interrupted restore (which needs it exclusively: Push would otherwise
// try to take that while this process holds the shared one).
func (b *buildRun) lockShared(ctx context.Context) error {
	if oci.RecoveryPending(b.layout) {
		release, err := b.layout.Acquire(ctx, nil, mount.Exclusive, b.lockOptions())
		if err == nil {
			var did string
			did, err = oci.Recover(b.layout)
			_ = release()
			if did != "" {
				b.warn(did)
			}
		}
		if err != nil {
			b.cacheOK = false
			return b.cacheProblem("finishing an interrupted restore", err)
		}
	}
	k, err := b.layout.Lock(ctx, mount.Shared, b.lockOptions())
	if err != nil {
		b.cacheOK = false
		return b.cacheProblem("locking "+b.layout.Dir, err)
	}
	b.lock = k
	return nil
}

// inject points the build at the caches. It returns the config path to give
// melange and extra melange arguments.
//
// Default: an env-file in a temporary directory (--env-file). It goes first,
// so env-files the user passes after -- win over it, as later files do in
// melange.
//
// --rewrite: a rewritten copy of the config in a temporary directory, with
// --source-dir set to the original config's directory (melange's default for
// it) unless the user gave one. The copy is not put next to the original:
// melange would copy it into the workspace with the sources, and the user's
// directory is left exactly as it was.
func (b *buildRun) inject() (config string, extra []string, err error) {
	opts := envinject.Options{Offline: b.f.offline, Force: b.f.force}
	for _, s := range b.f.set {
		v, err := envinject.ParseVar(s)
		if err != nil {
			return "", nil, usageErrorf("--set %s: %v", s, err)
		}
		opts.Set = append(opts.Set, v)
	}
	vars, err := envinject.DefaultVars(opts)
	if err != nil {
		return "", nil, usageErrorf("%v", err)
	}
	final, envVars := b.src, vars
	if b.f.rewrite {
		res, err := envinject.Inject(b.src, opts)
		if err != nil {
			return "", nil, configError(b.config, err)
		}
		final, envVars = res.Out, nil
		config = filepath.Join(b.tmp, filepath.Base(b.config))
		if err := os.WriteFile(config, res.Out, 0o644); err != nil {
			return "", nil, err
		}
		if b.margs.sourceDir == "" {
			extra = append(extra, "--source-dir", filepath.Dir(b.absConfig()))
		}
	} else {
		config = b.config
		envFile := filepath.Join(b.tmp, "melcache.env")
		fh, err := os.Create(envFile)
		if err != nil {
			return "", nil, err
		}
		err = envinject.WriteEnvFile(fh, vars)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", nil, fmt.Errorf("env-file %s: %w", envFile, err)
		}
		extra = append(extra, "--env-file", envFile)
	}
	caches, err := envinject.EffectiveCaches(final, envVars)
	if err != nil {
		return "", nil, configError(b.config, err)
	}
	b.report.GoModCache, b.report.GoCache = caches.GoModCache.Value, caches.GoCache.Value
	b.checkCaches(caches)
	return config, extra, nil
}

// checkCaches warns when the YAML's own environment makes the build use
// other caches than melcache's: melange lets the YAML win over env-files.
func (b *buildRun) checkCaches(c envinject.Caches) {
	for _, x := range []struct {
		key  string
		s    envinject.Setting
		want string
	}{
		{"GOMODCACHE", c.GoModCache, envinject.DefaultGoModCache},
		{"GOCACHE", c.GoCache, envinject.DefaultGoCache},
	} {
		if x.s.Value == x.want || x.s.From != envinject.FromYAML {
			continue
		}
		msg := fmt.Sprintf("%s:%d:%d: the config sets %s=%s, which wins over melcache's %s", b.config, x.s.Line, x.s.Col, x.key, x.s.Value, x.want)
		if x.key == "GOMODCACHE" && c.GoBuildSteps {
			msg += fmt.Sprintf("; go/build steps still use %s (they export it), runs: steps use %s", x.want, x.s.Value)
		} else {
			msg += fmt.Sprintf("; this build uses %s", x.s.Value)
		}
		if !x.s.Persists {
			msg += ", which melange throws away with the workspace"
		}
		msg += "; --rewrite --force overrides it for this build"
		b.warn(msg)
	}
}

func (b *buildRun) absConfig() string {
	p, err := filepath.Abs(b.config)
	if err != nil {
		return b.config
	}
	return p
}

// configError names the config file in an envinject error (file:line:col).
func configError(path string, err error) error {
	var pe *envinject.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%w", path, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// runMelange runs melange and returns its exit status. SIGINT and SIGTERM
// received by melcache are forwarded to it; melcache waits for it to exit
// either way. A melange killed by signal N gives 128+N, as a shell would.
func (b *buildRun) runMelange(argv []string) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = b.g.rawStdout(), b.g.stderr // melange's own log, colours and all
	if b.f.json {
		cmd.Stdout = b.g.stderr // stdout holds the JSON report only
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	b.g.log.Info("running melange", "command", strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			b.g.log.Info("forwarding signal to melange", "signal", s.String(), "pid", cmd.Process.Pid)
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			switch {
			case err == nil:
				return 0, nil
			case errors.As(err, &ee):
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					fmt.Fprintf(b.g.stderr, "melcache: melange was killed by signal %d (%v)\n", int(ws.Signal()), ws.Signal())
					return 128 + int(ws.Signal()), nil
				}
				return ee.ExitCode(), nil
			}
			return -1, fmt.Errorf("running %s: %w", argv[0], err)
		}
	}
}

func (b *buildRun) pushDelta(ctx context.Context, s oci.Store, tag string) error {
	o := oci.Options{Lock: b.lock, Log: b.g.log, LockOptions: b.lockOptions()}
	o.GoVersion, _ = oci.GoPackage(b.config)
	p := newTransferBars(b.g, b.f.json)
	o.Progress = p
	res, err := oci.Push(ctx, b.layout, s, tag, o)
	p.Wait()
	if err != nil {
		if b.f.strict {
			return fmt.Errorf("push to %s (--strict): %w", s, err)
		}
		b.warn(fmt.Sprintf("push to %s: %v; the build's result stands", s, err))
		return nil
	}
	b.report.Push = res
	return nil
}

// cacheSize is what the caches hold: module zips and bytes.
type cacheSize struct {
	zips  int
	bytes int64
}

// measureCaches walks gomodcache and gocache. Errors (a cache missing, a
// file vanishing under a concurrent trim) only make the figure smaller.
func measureCaches(l mount.Layout) cacheSize {
	var s cacheSize
	for _, c := range l.Caches() {
		root := l.CacheDir(c)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
				s.bytes += fi.Size()
			}
			if c == mount.GoModCache && strings.HasSuffix(p, ".zip") && strings.Contains(p, string(filepath.Separator)+"cache"+string(filepath.Separator)+"download"+string(filepath.Separator)) {
				s.zips++
			}
			return nil
		})
	}
	return s
}

// printReport prints the report as a short table, or JSON.
func (b *buildRun) printReport() error {
	r := &b.report
	if b.f.json {
		return writeJSON(b.g.stdout, r)
	}
	w := tabwriter.NewWriter(b.g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "melcache build\t%s\n", r.Config)
	fmt.Fprintf(w, "  melange exit\t%d\n", r.ExitCode)
	switch {
	case r.Pull != nil:
		fmt.Fprintf(w, "  restored\t%s:%s (%s), %d files written, %s downloaded, %.1fs\n", r.Pull.Store, r.Pull.Tag, r.Pull.Resolved, r.Pull.FilesWritten, humanBytes(r.Pull.DataBytes), r.Pull.Seconds)
	case r.PullMiss:
		fmt.Fprintf(w, "  restored\tnothing (no matching snapshot)\n")
	}
	if r.Preloaded != nil {
		fmt.Fprintf(w, "  preloaded\t%d modules\n", *r.Preloaded)
	}
	if r.Hits != nil {
		fmt.Fprintf(w, "  GOCACHE hits\t%d\n", *r.Hits)
		fmt.Fprintf(w, "  GOCACHE misses\t%d\n", *r.Misses)
	} else {
		fmt.Fprintf(w, "  GOCACHE hits\tunknown (no mark)\n")
	}
	fmt.Fprintf(w, "  modules downloaded\t%d\n", r.ModulesDownloaded)
	sign := ""
	if r.BytesAdded < 0 {
		sign = "-"
	}
	fmt.Fprintf(w, "  bytes added\t%s%s\n", sign, humanBytes(abs64(r.BytesAdded)))
	fmt.Fprintf(w, "  build time\t%.1fs (total %.1fs)\n", r.BuildSeconds, r.TotalSeconds)
	switch {
	case r.Push != nil && r.Push.Unchanged:
		fmt.Fprintf(w, "  pushed\tnothing new (%s:%s)\n", r.Push.Store, r.Push.Tag)
	case r.Push != nil:
		fmt.Fprintf(w, "  pushed\t%s:%s, %d layers (%s), %.1fs\n", r.Push.Store, r.Push.Tag, r.Push.Layers, humanBytes(r.Push.DataBytes), r.Push.Seconds)
	case r.PushSkipped != "":
		fmt.Fprintf(w, "  pushed\tnothing: %s\n", r.PushSkipped)
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "  warnings\t%d (above)\n", len(r.Warnings))
	}
	return w.Flush()
}

func abs64(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
