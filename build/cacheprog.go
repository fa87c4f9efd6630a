package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"

	"github.com/melcache/melcache/cacheprog"
	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// cacheProg is `melcache build --cacheprog`'s state: the forwarder chosen
// in checkInput, the bridge started once the cache dir is ready.
type cacheProg struct {
	forwarder string // host path of the static melcache the guest runs
	arch      string
	bridge    *cacheprog.Bridge
	// remote serves gocache misses from the --pull snapshot (pullLazy);
	// lazyStore and lazyDigest name that snapshot for the fallback pull.
	remote     cacheprog.Remote
	lazyStore  oci.Store
	lazyDigest string
}

// checkCacheProg decides, before anything changes, whether this build can
// use the bridge: a split cache dir, a runner that shares a unix socket
// with the host (bubblewrap; docker untested; qemu cannot), and a static
// forwarder for the guest's arch. An unusable --cacheprog-binary is bad
// input; an unsuitable running binary or runner is a warning, and the
// build uses the cache dir as without --cacheprog.
func (b *run) checkCacheProg() error {
	if !b.cfg.CacheProg {
		return nil
	}
	switch b.cfg.MelangeArgs.Runner {
	case "", "bubblewrap":
	case "docker":
		b.warn("--cacheprog with --runner docker is untested (no docker engine where melcache is tested)")
	default:
		b.warn(fmt.Sprintf("--cacheprog: --runner %s cannot reach a host unix socket; building without cacheprog (Go uses the cache dir directly)", b.cfg.MelangeArgs.Runner))
		return nil
	}
	if b.cfg.Layout.Mode != mount.Split {
		b.warn("--cacheprog needs the split layout (DIR/gocache); building without it")
		return nil
	}
	arch := b.cfg.MelangeArgs.Arch
	if arch == "" {
		arch = runtime.GOARCH // melange builds for the host's arch by default
	}
	cp := &cacheProg{forwarder: b.cfg.CacheProgBinary, arch: arch}
	if cp.forwarder != "" {
		if err := cacheprog.CheckForwarder(cp.forwarder, arch); err != nil {
			return &UsageError{Err: fmt.Errorf("--cacheprog-binary: %w", err)}
		}
	} else {
		exe, err := os.Executable()
		if err == nil {
			err = cacheprog.CheckForwarder(exe, arch)
		}
		if err != nil {
			return b.cacheProblem("--cacheprog", fmt.Errorf("the running melcache cannot be the guest's forwarder (%w); give --cacheprog-binary PATH", err))
		}
		cp.forwarder = exe
	}
	b.cp = cp
	return nil
}

// cacheProgVars are the variables that start the forwarder in the guest:
// GOCACHEPROG is the bare binary (an env-file cannot carry arguments) and
// the socket comes from cacheprog.ForwardEnv. GOCACHE stays set: fuzzing
// still uses the on-disk cache.
func (b *run) cacheProgVars() []envinject.Var {
	if b.cp == nil {
		return nil
	}
	dir := path.Join(mount.GuestRoot, mount.StateName)
	prog, sock := cacheprog.GuestPaths(dir)
	return []envinject.Var{{Key: "GOCACHEPROG", Value: prog}, {Key: cacheprog.ForwardEnv, Value: sock}}
}

// startCacheProg places the forwarder and starts serving its socket. On
// failure the build goes on without cacheprog (a cache problem): the
// caller points melange at the caches again without the variables.
func (b *run) startCacheProg(ctx context.Context) (ok bool, err error) {
	if b.cp == nil {
		return true, nil
	}
	if b.cacheOK {
		b.cp.bridge, err = cacheprog.StartBridge(ctx, b.cfg.Layout, cacheprog.BridgeOptions{
			Forwarder: b.cp.forwarder, Arch: b.cp.arch, Log: b.log, Remote: b.cp.remote})
		if err == nil {
			b.log.Info("cacheprog bridge serving", "forwarder", b.cp.forwarder, "arch", b.cp.arch)
			return true, nil
		}
	} else {
		err = fmt.Errorf("the cache directory is not usable")
	}
	lazy := b.cp
	b.cp = nil
	if perr := b.cacheProblem("cacheprog", err); perr != nil {
		return false, perr
	}
	if lazy.remote != nil && b.cacheOK {
		return false, b.pullGoCacheNow(ctx, lazy)
	}
	return false, nil
}

// pullGoCacheNow pulls the gocache that was left to a bridge that did not
// start. A pull needs the exclusive lock: the shared one is dropped for it
// and taken again.
func (b *run) pullGoCacheNow(ctx context.Context, lazy *cacheProg) error {
	if b.lock != nil {
		_ = b.lock.Unlock()
		b.lock = nil
	}
	if err := b.pullCaches(ctx, lazy.lazyStore, lazy.lazyDigest, nil, []mount.Cache{mount.GoCache}); err != nil {
		return err
	}
	if b.cacheOK {
		return b.lockShared(ctx)
	}
	return nil
}

// pullLazy is --pull under --cacheprog: the snapshot is resolved once, its
// gomodcache pulled as usual (by digest, --only gomodcache), and its
// gocache left to the bridge, which fetches only the objects the build
// asks for (cacheprog.RemoteFor; a format 1 snapshot is pulled whole).
func (b *run) pullLazy(ctx context.Context, s oci.Store, ref string, keys []string) error {
	if ref == "" && len(keys) == 0 {
		ref = DefaultTag
	}
	snap, tag, how, err := oci.Resolve(ctx, s, ref, keys)
	if errors.Is(err, oci.ErrNotFound) {
		b.report.PullMiss = true
		b.o.notice(describeMiss(ref, s, keys))
		return nil
	} else if err != nil {
		return b.cacheProblem("pull from "+s.String(), sayStoreOnce(s, err))
	}
	if snap.Config.Holds(mount.GoModCache) {
		if err := b.pullCaches(ctx, s, snap.Digest.String(), nil, []mount.Cache{mount.GoModCache}); err != nil || !b.cacheOK {
			return err
		}
	}
	if b.cp.remote, err = cacheprog.RemoteFor(ctx, b.cfg.Layout, s, snap, b.log); err != nil {
		return b.cacheProblem("pull from "+s.String(), sayStoreOnce(s, err))
	}
	b.cp.lazyStore, b.cp.lazyDigest = s, snap.Digest.String()
	b.log.Info("gocache fetched lazily by cacheprog", "store", s.String(), "tag", tag, "resolved", how)
	return nil
}

// stopCacheProg ends the bridge after melange and reports what it served.
func (b *run) stopCacheProg() {
	if b.cp == nil || b.cp.bridge == nil {
		return
	}
	rep, err := b.cp.bridge.Stop()
	b.report.CacheProg = &rep
	if err != nil {
		b.warn(fmt.Sprintf("cacheprog bridge: %v", err))
	}
}
