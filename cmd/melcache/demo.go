package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
	"github.com/spf13/cobra"
)

func init() { addCommand(newDemoCmd) }

// demoSource is the example package the demo builds, relative to the
// repository root (the README runs the demo from a clone).
const demoSource = "examples/hello-go"

// demoTag is the snapshot's tag in the demo's store.
const demoTag = "demo"

// demoPhase is one build of the demo.
type demoPhase struct {
	Dir string `json:"dir"`
	// ModulesSeconds is the preload (cold) or the restore (warm).
	ModulesSeconds float64 `json:"modulesSeconds"`
	BuildSeconds   float64 `json:"buildSeconds"`
	TotalSeconds   float64 `json:"totalSeconds"`
	// Compiles counts compile actions in `go build -x` output.
	Compiles int `json:"compiles"`
	Hits     int `json:"hits"`
	Misses   int `json:"misses"`
}

// demoReport is what `melcache demo --json` prints.
type demoReport struct {
	Source  string      `json:"source"`
	Sandbox string      `json:"sandbox"`
	WorkDir string      `json:"workDir,omitempty"`
	Store   string      `json:"store"`
	Cold    demoPhase   `json:"cold"`
	Warm    demoPhase   `json:"warm"`
	Push    *oci.Result `json:"push"`
	Pull    *oci.Result `json:"pull"`
	// WarmPercent is the warm total as a percentage of the cold total.
	WarmPercent float64 `json:"warmPercent"`
}

func newDemoCmd(g *globals) *cobra.Command {
	var (
		source string
		keep   bool
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "Show the whole flow on this machine: cold build, snapshot, restore, warm build",
		Long: `demo runs melcache's whole flow with nothing but Go installed:

  1. cold: prepare a fresh cache dir, preload the example's modules (from
     GOPROXY as your go command would), build it with both Go caches in the
     dir and no network;
  2. snapshot the dir into an embedded store (an OCI layout, as 'push' with
     no REF writes under your cache dir, but in the demo's own temporary
     directory, so your snapshots are not touched);
  3. warm: restore the snapshot into a NEW cache dir and build again, with no
     network and no module proxy.

It prints both times, the compile actions of each build and the build-cache
hits and misses. Builds run 'go build -trimpath' (as melange's go/build
does) under 'bwrap --unshare-net' when bubblewrap works here, otherwise as
plain 'go build' with GOPROXY=off and the same caches. Everything is removed
afterwards unless --keep.`,
		Example: `  go run ./cmd/melcache demo          # from a clone of melcache
  melcache demo --source ./mymodule --keep --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := filepath.Abs(source)
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
				return fmt.Errorf("demo source %s: no go.mod (%v); run from the melcache repository root or give --source", src, err)
			}
			work, err := os.MkdirTemp("", "melcache-demo-*")
			if err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(g.stderr, "melcache: demo files kept in %s\n", work)
			} else {
				defer mount.RemoveAll(work)
			}
			rep, err := runDemo(cmd.Context(), g, src, work)
			if err != nil {
				return err
			}
			if keep {
				rep.WorkDir = work
			}
			if asJSON {
				return writeJSON(g.stdout, rep)
			}
			printDemo(g, rep)
			return nil
		},
	}
	c.Flags().StringVar(&source, "source", demoSource, "Go module to build")
	c.Flags().BoolVar(&keep, "keep", false, "keep the cache dirs, the store and the binaries")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func runDemo(ctx context.Context, g *globals, src, work string) (*demoReport, error) {
	sb := detectSandbox(ctx)
	rep := &demoReport{Source: src, Sandbox: sb.describe()}
	if sb.why != "" {
		fmt.Fprintf(g.stderr, "melcache: %s\n", sb.why)
	}
	store := oci.NewEmbeddedStore(filepath.Join(work, "store"))
	rep.Store = store.String()
	o := oci.Options{Log: g.log}

	// Cold.
	cold, err := demoLayout(ctx, filepath.Join(work, "cold"))
	if err != nil {
		return nil, err
	}
	rep.Cold.Dir = cold.Dir
	g.log.Info("cold: preloading modules", "source", src)
	t0 := time.Now()
	if _, err := cold.Preload(ctx, mount.PreloadOptions{Source: src, Log: g.log}); err != nil {
		return nil, err
	}
	rep.Cold.ModulesSeconds = time.Since(t0).Seconds()
	// Both builds write the same output path, as two CI runs would.
	bin := filepath.Join(work, "bin", filepath.Base(src))
	if err := demoBuild(ctx, g, sb, cold, src, bin, &rep.Cold); err != nil {
		return nil, err
	}
	rep.Cold.TotalSeconds = rep.Cold.ModulesSeconds + rep.Cold.BuildSeconds

	g.log.Info("snapshot into the store", "store", store.String())
	if rep.Push, err = oci.Push(ctx, cold, store, demoTag, o); err != nil {
		return nil, err
	}

	// Warm.
	warm, err := demoLayout(ctx, filepath.Join(work, "warm"))
	if err != nil {
		return nil, err
	}
	rep.Warm.Dir = warm.Dir
	t0 = time.Now()
	if rep.Pull, err = oci.Pull(ctx, warm, store, demoTag, o); err != nil {
		return nil, err
	}
	rep.Warm.ModulesSeconds = time.Since(t0).Seconds()
	if err := demoBuild(ctx, g, sb, warm, src, bin, &rep.Warm); err != nil {
		return nil, err
	}
	rep.Warm.TotalSeconds = rep.Warm.ModulesSeconds + rep.Warm.BuildSeconds
	if rep.Cold.TotalSeconds > 0 {
		rep.WarmPercent = 100 * rep.Warm.TotalSeconds / rep.Cold.TotalSeconds
	}
	return rep, nil
}

func demoLayout(ctx context.Context, dir string) (mount.Layout, error) {
	l, err := mount.New(dir, mount.Options{})
	if err != nil {
		return l, err
	}
	_, err = l.Prepare(ctx, mount.PrepareOptions{})
	return l, err
}

// demoBuild marks the build cache, builds src with both caches in l and no
// network, and records time, compile actions, hits and misses.
func demoBuild(ctx context.Context, g *globals, sb sandbox, l mount.Layout, src, out string, p *demoPhase) error {
	rec, err := l.Mark(ctx, mount.MarkOptions{Now: time.Now})
	if err != nil {
		return err
	}
	argv := sb.wrap([]string{"go", "build", "-x", "-trimpath", "-o", out, "."})
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = src
	cmd.Env = offlineGoEnv(l)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	g.log.Info("building", "dir", l.Dir, "command", strings.Join(argv, " "))
	t0 := time.Now()
	err = cmd.Run()
	p.BuildSeconds = time.Since(t0).Seconds()
	if err != nil {
		return fmt.Errorf("%s in %s: %w\n%s", strings.Join(argv, " "), src, err, tail(buf.Bytes(), 2000))
	}
	p.Compiles = len(compileAction.FindAll(buf.Bytes(), -1))
	use, err := l.Use(rec.Time)
	if err != nil {
		return err
	}
	p.Hits, p.Misses = use.Hits, use.Misses
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

// sandbox runs the demo's builds under bwrap with the network unshared when
// bubblewrap works here.
type sandbox struct {
	bwrap string
	why   string // why there is no sandbox
}

// detectSandbox tries bwrap once: it may be installed but unusable (no
// user namespaces for this user, or inside a container).
func detectSandbox(ctx context.Context) sandbox {
	p, err := exec.LookPath("bwrap")
	if err != nil {
		return sandbox{why: "bwrap not found: building with plain go build (GOPROXY=off, same caches)"}
	}
	out, err := exec.CommandContext(ctx, p, sandboxArgs("true")...).CombinedOutput()
	if err != nil {
		return sandbox{why: fmt.Sprintf("bwrap --unshare-net does not work here (%v: %s): building with plain go build (GOPROXY=off, same caches)", err, strings.TrimSpace(string(out)))}
	}
	return sandbox{bwrap: p}
}

// sandboxArgs: the host's filesystem as it is, no network.
func sandboxArgs(argv ...string) []string {
	return append([]string{"--unshare-net", "--dev-bind", "/", "/", "--"}, argv...)
}

func (s sandbox) wrap(argv []string) []string {
	if s.bwrap == "" {
		return argv
	}
	return append([]string{s.bwrap}, sandboxArgs(argv...)...)
}

func (s sandbox) describe() string {
	if s.bwrap == "" {
		return "none (GOPROXY=off)"
	}
	return "bwrap --unshare-net"
}

func printDemo(g *globals, r *demoReport) {
	fmt.Fprintf(g.stdout, "melcache demo: %s, go build -trimpath, sandbox: %s\n\n", r.Source, r.Sandbox)
	w := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\tcold\twarm\t\n")
	fmt.Fprintf(w, "modules (preload | restore)\t%.2fs\t%.2fs\t\n", r.Cold.ModulesSeconds, r.Warm.ModulesSeconds)
	fmt.Fprintf(w, "go build\t%.2fs\t%.2fs\t\n", r.Cold.BuildSeconds, r.Warm.BuildSeconds)
	fmt.Fprintf(w, "total\t%.2fs\t%.2fs\t\n", r.Cold.TotalSeconds, r.Warm.TotalSeconds)
	fmt.Fprintf(w, "compile actions\t%d\t%d\t\n", r.Cold.Compiles, r.Warm.Compiles)
	fmt.Fprintf(w, "GOCACHE hits\t%d\t%d\t\n", r.Cold.Hits, r.Warm.Hits)
	fmt.Fprintf(w, "GOCACHE misses\t%d\t%d\t\n", r.Cold.Misses, r.Warm.Misses)
	_ = w.Flush()
	fmt.Fprintf(g.stdout, "\nsnapshot: %d files (%s), %s compressed, pushed in %.2fs to %s\n",
		r.Push.Files, humanBytes(r.Push.Bytes), humanBytes(r.Push.DataBytes), r.Push.Seconds, r.Store)
	fmt.Fprintf(g.stdout, "warm (restore + build) took %.0f%% of cold (preload + build)\n", r.WarmPercent)
}
