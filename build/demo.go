package build

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// DemoSource is the example package the demo builds, relative to the
// repository root (the README runs the demo from a clone).
const DemoSource = "examples/hello-go"

// demoTag is the snapshot's tag in the demo's store.
const demoTag = "demo"

// outputTail bounds how much of a failed build's output an error quotes.
const outputTail = 2000

// DemoOptions configure Demo.
type DemoOptions struct {
	// Source is the Go module to build (absolute, or relative to the
	// working directory); it must hold a go.mod.
	Source string
	// WorkDir receives the cache dirs, the store and the binaries; the
	// caller creates and removes it.
	WorkDir string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
	// Notice receives the reason the builds run without a sandbox; nil
	// drops it.
	Notice func(msg string)
	// Now is the clock for the timings; nil means time.Now.
	Now func() time.Time
}

// DemoPhase is one build of the demo.
type DemoPhase struct {
	Dir string `json:"dir"`
	// ModulesSeconds is the preload (cold) or the restore (warm).
	ModulesSeconds float64 `json:"modulesSeconds"`
	BuildSeconds   float64 `json:"buildSeconds"`
	TotalSeconds   float64 `json:"totalSeconds"`
	// Compiles counts compile actions in `go build -x` output.
	Compiles int `json:"compiles"`
	// Hits and Misses are the compile actions GOCACHE reused and ran
	// (mount.BuildUse.CompileActions); Bookkeeping the other entries Go
	// wrote, which are not compiles (module index, test and vet results).
	Hits        int `json:"hits"`
	Misses      int `json:"misses"`
	Bookkeeping int `json:"bookkeeping"`
}

// DemoReport is the outcome of Demo.
type DemoReport struct {
	Source  string `json:"source"`
	Sandbox string `json:"sandbox"`
	// WorkDir is set by callers that keep the demo's files.
	WorkDir string      `json:"workDir,omitempty"`
	Store   string      `json:"store"`
	Cold    DemoPhase   `json:"cold"`
	Warm    DemoPhase   `json:"warm"`
	Push    *oci.Result `json:"push"`
	Pull    *oci.Result `json:"pull"`
	// WarmPercent is the warm total as a percentage of the cold total.
	WarmPercent float64 `json:"warmPercent"`
}

// demo is one Demo run.
type demo struct {
	o   DemoOptions
	log *slog.Logger
	sb  sandbox
	src string
	bin string // both builds write it, as two CI runs would
}

// Demo runs melcache's whole flow with nothing but Go installed: a cold
// build (fresh cache dir, modules preloaded from GOPROXY, no network in the
// build), a snapshot into an embedded store under o.WorkDir, a restore
// into a new cache dir and a warm build with no network and no module
// proxy. Builds run under `bwrap --unshare-net` when bubblewrap works
// here, otherwise as plain `go build` with GOPROXY=off.
func Demo(ctx context.Context, o DemoOptions) (*DemoReport, error) {
	src, err := filepath.Abs(o.Source)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		return nil, fmt.Errorf("demo source %s: no go.mod (%v); run from the melcache repository root or give --source", src, err)
	}
	d := &demo{o: o, log: logger(o.Log), sb: detectSandbox(ctx), src: src,
		bin: filepath.Join(o.WorkDir, "bin", filepath.Base(src))}
	rep := &DemoReport{Source: src, Sandbox: d.sb.describe()}
	if d.sb.why != "" && o.Notice != nil {
		o.Notice(d.sb.why)
	}
	store := oci.NewEmbeddedStore(filepath.Join(o.WorkDir, "store"))
	rep.Store = store.String()
	if err := d.cold(ctx, rep, store); err != nil {
		return nil, err
	}
	if err := d.warm(ctx, rep, store); err != nil {
		return nil, err
	}
	if rep.Cold.TotalSeconds > 0 {
		rep.WarmPercent = 100 * rep.Warm.TotalSeconds / rep.Cold.TotalSeconds
	}
	return rep, nil
}

func (d *demo) now() time.Time { return clock(d.o.Now)() }

// cold preloads the modules into a fresh cache dir, builds, and pushes the
// result to store.
func (d *demo) cold(ctx context.Context, rep *DemoReport, store oci.Store) error {
	l, err := demoLayout(ctx, filepath.Join(d.o.WorkDir, "cold"))
	if err != nil {
		return err
	}
	rep.Cold.Dir = l.Dir
	d.log.Info("cold: preloading modules", "source", d.src)
	t0 := d.now()
	if _, err := l.Preload(ctx, mount.PreloadOptions{Source: d.src, Log: d.log}); err != nil {
		return err
	}
	rep.Cold.ModulesSeconds = d.now().Sub(t0).Seconds()
	if err := d.build(ctx, l, &rep.Cold); err != nil {
		return err
	}
	rep.Cold.TotalSeconds = rep.Cold.ModulesSeconds + rep.Cold.BuildSeconds
	d.log.Info("snapshot into the store", "store", store.String())
	rep.Push, err = oci.Push(ctx, l, store, demoTag, oci.Options{Log: d.log})
	return err
}

// warm restores the snapshot into a new cache dir and builds again.
func (d *demo) warm(ctx context.Context, rep *DemoReport, store oci.Store) error {
	l, err := demoLayout(ctx, filepath.Join(d.o.WorkDir, "warm"))
	if err != nil {
		return err
	}
	rep.Warm.Dir = l.Dir
	t0 := d.now()
	if rep.Pull, err = oci.Pull(ctx, l, store, demoTag, oci.Options{Log: d.log}); err != nil {
		return err
	}
	rep.Warm.ModulesSeconds = d.now().Sub(t0).Seconds()
	if err := d.build(ctx, l, &rep.Warm); err != nil {
		return err
	}
	rep.Warm.TotalSeconds = rep.Warm.ModulesSeconds + rep.Warm.BuildSeconds
	return nil
}

func demoLayout(ctx context.Context, dir string) (mount.Layout, error) {
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		return l, err
	}
	_, err = l.Prepare(ctx, mount.PrepareOptions{})
	return l, err
}

// build marks the build cache, builds the source with both caches in l and
// no network, and records time, compile actions, hits and misses.
func (d *demo) build(ctx context.Context, l mount.Layout, p *DemoPhase) error {
	rec, err := l.Mark(ctx, mount.MarkOptions{Now: d.now})
	if err != nil {
		return err
	}
	argv := d.sb.wrap([]string{"go", "build", "-x", "-trimpath", "-o", d.bin, "."})
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = d.src
	cmd.Env = offlineGoEnv(l)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	d.log.Info("building", "dir", l.Dir, "command", joinArgs(argv))
	t0 := d.now()
	err = cmd.Run()
	p.BuildSeconds = d.now().Sub(t0).Seconds()
	if err != nil {
		return fmt.Errorf("%s in %s: %w\n%s", joinArgs(argv), d.src, err, tail(buf.Bytes(), outputTail))
	}
	p.Compiles = len(compileAction.FindAll(buf.Bytes(), -1))
	use, err := l.Use(rec.Time)
	if err != nil {
		return err
	}
	p.Hits, p.Misses = use.CompileActions.Reused, use.CompileActions.Run
	p.Bookkeeping = use.ModuleIndex.Run + use.Executables.Run + use.Other.Run
	return nil
}

// compileAction matches a compile action in `go build -x` output: one per
// package compiled, none for a package taken from GOCACHE.
var compileAction = regexp.MustCompile(`(?m)/compile( |$)`)

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// offlineGoEnv is the environment of a build that uses l's caches and
// nothing else: no module proxy, no checksum database, the local toolchain,
// no GOFLAGS or go.work of the user's.
func offlineGoEnv(l mount.Layout) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOMODCACHE", "GOCACHE", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOFLAGS", "GOTOOLCHAIN", "GOWORK", "GOENV":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOMODCACHE="+l.CacheDir(mount.GoModCache), "GOCACHE="+l.CacheDir(mount.GoCache),
		"GOPROXY=off", "GOSUMDB=off", "GOTOOLCHAIN=local", "GOFLAGS=", "GOWORK=off", "GOENV=off")
}
