package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/melcache/melcache/envinject"
	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

// The doctor checks that need more than the cache directory (oci,
// envinject, the melange command line). The cache directory's own checks
// are mount.Layout.Doctor.

type check = mount.Check

// melangeOptsEnv are the Makefile variables wolfi-style repositories pass
// to melange build (MELANGE_OPTS to every melange command, MELANGE_BUILD_OPTS
// to builds); doctor reads them from the environment, in that order, before
// the arguments after "--" (a later flag wins, as in melange).
var melangeOptsEnv = []string{"MELANGE_OPTS", "MELANGE_BUILD_OPTS"}

// doctorMelangeArgs reads melange's command line as doctor sees it: the
// Makefile variables first, then the arguments after "--".
func doctorMelangeArgs(after []string, getenv func(string) string) (melangeArgs, error) {
	var args []string
	for _, v := range melangeOptsEnv {
		args = append(args, strings.Fields(getenv(v))...)
	}
	return parseMelangeArgs(append(args, after...))
}

// qemuVirtiofsEnv makes melange's qemu runner share the cache dir with
// virtiofs; without it the runner mounts it read-only under an overlay and
// the build's writes are thrown away (docs/background.md, "Runners").
const qemuVirtiofsEnv = "QEMU_USE_VIRTIOFS"

func checkRunner(m melangeArgs, getenv func(string) string) check {
	switch m.runner {
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
	return check{Name: "runner", Status: mount.CheckWarn, Message: "unknown runner " + m.runner + ": cannot tell whether cache writes survive the build"}
}

// readEnvFiles reads melange --env-file files (KEY=VALUE lines, # comments).
func readEnvFiles(paths []string) ([]envinject.Var, error) {
	var out []envinject.Var
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		n := 0
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			v, err := envinject.ParseVar(line)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s:%d: %w", p, n, err)
			}
			out = append(out, v)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return out, nil
}

// checkConfig reports the caches a build of the config really uses (YAML
// over --env-file over melange's and Go's defaults) and inject's findings.
func checkConfig(path string, envFiles []string) []check {
	src, err := os.ReadFile(path)
	if err != nil {
		return []check{{Name: "config", Status: mount.CheckFail, Message: err.Error(), Fix: "give --config a readable melange YAML"}}
	}
	vars, err := readEnvFiles(envFiles)
	if err != nil {
		return []check{{Name: "config", Status: mount.CheckFail, Message: err.Error(), Fix: "fix the --env-file"}}
	}
	c, err := envinject.EffectiveCaches(src, vars)
	if err != nil {
		return []check{{Name: "config", Status: mount.CheckFail, Message: fmt.Sprintf("%s: %v", path, err), Fix: "fix the YAML"}}
	}
	injectFix := "melcache inject -w " + path + " (or melcache inject --env-file FILE " + path + " and pass melange --env-file FILE)"
	var out []check
	for _, s := range []struct {
		name string
		set  envinject.Setting
	}{{"GOMODCACHE", c.GoModCache}, {"GOCACHE", c.GoCache}} {
		where := s.set.From
		if s.set.From == envinject.FromYAML {
			where = fmt.Sprintf("%s:%d:%d", path, s.set.Line, s.set.Col)
		}
		msg := fmt.Sprintf("%s=%s (from %s)", s.name, s.set.Value, where)
		if !s.set.Persists {
			out = append(out, check{Name: "config", Status: mount.CheckFail,
				Message: msg + ": not under " + envinject.GuestRoot + ", so it is thrown away with the build workspace", Fix: injectFix})
			continue
		}
		out = append(out, check{Name: "config", Status: mount.CheckPass, Message: msg})
	}
	res, err := envinject.Inject(src, envinject.Options{})
	if err == nil {
		for _, f := range res.Findings {
			out = append(out, check{Name: "config", Status: mount.CheckWarn,
				Message: fmt.Sprintf("%s:%d:%d: %s", path, f.Line, f.Col, f.Msg), Fix: f.Fix})
		}
	}
	return out
}

// checkToolchain compares go.mod's go line with the Go the build uses.
func checkToolchain(ctx context.Context, config, source string, envFiles []string) check {
	env := os.Environ()
	if vars, err := readEnvFiles(envFiles); err == nil {
		for _, v := range vars {
			env = append(env, v.Key+"="+v.Value)
		}
	}
	err := mount.CheckToolchain(ctx, mount.PreloadOptions{Config: config, Source: source, Env: env})
	var te *mount.ToolchainError
	switch {
	case err == nil:
		return check{Name: "toolchain", Status: mount.CheckPass, Message: "the build's Go satisfies every go.mod go line"}
	case errors.As(err, &te):
		return check{Name: "toolchain", Status: mount.CheckFail,
			Message: fmt.Sprintf("%s:%d: go %s is newer than %s, and %s: the build would fail", te.File, te.Line, te.Needs, te.Have, te.Why),
			Fix:     te.Solution}
	case errors.Is(err, mount.ErrNoSource):
		return check{Name: "toolchain", Status: mount.CheckSkip, Message: err.Error()}
	}
	return check{Name: "toolchain", Status: mount.CheckWarn, Message: err.Error()}
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
		return check{Name: "journal", Status: mount.CheckFail, Message: msg, Fix: restoreFix(l, p)}
	}
	return check{Name: "journal", Status: mount.CheckPass, Message: "no interrupted restore"}
}

// checkStore probes the registry (or layout) REF names.
func checkStore(ctx context.Context, raw string, so oci.StoreOptions) []check {
	ref, err := oci.ParseRef(raw, oci.RefOptions{Insecure: so.Insecure})
	if err != nil {
		return []check{{Name: "registry", Status: mount.CheckFail, Message: err.Error(), Fix: "give REF as HOST/REPO[:TAG] or oci:PATH"}}
	}
	p := oci.Probe(ctx, ref, so)
	var out []check
	if p.Registry != "" {
		if p.SchemeErr != "" {
			return append(out, check{Name: "scheme", Status: mount.CheckFail, Message: p.SchemeErr,
				Fix: "serve the registry over HTTPS, or pass --insecure if the network path is trusted"})
		}
		out = append(out, check{Name: "scheme", Status: mount.CheckPass, Message: p.Scheme + " to " + p.Registry})
		if p.CredentialsErr != "" {
			out = append(out, check{Name: "credentials", Status: mount.CheckFail, Message: p.CredentialsErr,
				Fix: "fix ~/.docker/config.json or the credential helper it names (docker login " + p.Registry + ")"})
		}
	}
	switch {
	case p.ReachErr != "" && !p.Reachable:
		out = append(out, check{Name: "registry", Status: mount.CheckFail, Message: "cannot reach " + p.Store + ": " + p.ReachErr,
			Fix: "check the host and port, that the registry runs, and proxies/firewalls (HTTPS_PROXY, NO_PROXY)"})
	case p.AuthErr != "":
		out = append(out, check{Name: "credentials", Status: mount.CheckFail, Message: p.AuthErr + " (using " + p.Credentials + ")",
			Fix: "docker login " + p.Registry + " (or crane auth login) with credentials that may read " + p.Store + "; melcache reads ~/.docker/config.json, $DOCKER_CONFIG, REGISTRY_AUTH_FILE"})
	case p.ReachErr != "" && strings.Contains(p.ReachErr, "x509"):
		out = append(out, check{Name: "registry", Status: mount.CheckFail, Message: p.Store + ": " + p.ReachErr,
			Fix: "add the registry's CA certificate to the system trust store (SSL_CERT_FILE or SSL_CERT_DIR), or pass --insecure if the network path is trusted"})
	case p.ReachErr != "":
		out = append(out, check{Name: "registry", Status: mount.CheckFail, Message: p.Store + ": " + p.ReachErr, Fix: "check the reference and the registry's logs"})
	default:
		msg := fmt.Sprintf("%s answers and lists %d tags", p.Store, p.Tags)
		if p.RepoMissing {
			msg = p.Store + " answers; the repository does not exist yet (the first push creates it)"
		}
		if p.Credentials != "" {
			msg += " (credentials: " + p.Credentials + ")"
		}
		out = append(out, check{Name: "registry", Status: mount.CheckPass, Message: msg})
	}
	return out
}

// checkSnapshotGo compares the Go and arch the cache's last snapshot was
// made with (its config) against this build's: GOCACHE keys include both,
// so a snapshot of another Go version restores a build cache that never
// hits. The build's Go is the config's go-1.NN package, else the local go.
func checkSnapshotGo(ctx context.Context, l mount.Layout, raw, config string, so oci.StoreOptions) check {
	rec, err := l.LastSnapshot()
	if err != nil || rec == nil {
		return check{Name: "snapshot", Status: mount.CheckSkip, Message: "no snapshot pulled or pushed here yet"}
	}
	if raw == "" && !strings.HasPrefix(rec.Ref, "embedded store") {
		return check{Name: "snapshot", Status: mount.CheckSkip, Message: "last snapshot " + rec.Ref + ": give its REF to compare its Go version"}
	}
	ref, err := oci.ParseRef(raw, oci.RefOptions{Insecure: so.Insecure})
	if err != nil {
		return check{Name: "snapshot", Status: mount.CheckSkip, Message: err.Error()}
	}
	s, _, err := oci.OpenStore(ctx, ref, so)
	if err != nil {
		return check{Name: "snapshot", Status: mount.CheckSkip, Message: err.Error()}
	}
	snap, err := oci.FetchSnapshot(ctx, s, rec.Digest)
	if err != nil {
		return check{Name: "snapshot", Status: mount.CheckSkip, Message: "last snapshot " + rec.Digest + " not readable from " + s.String() + ": " + err.Error()}
	}
	if snap.Config.Arch != oci.HostArch() {
		return check{Name: "snapshot", Status: mount.CheckWarn,
			Message: fmt.Sprintf("the last snapshot (%s) was made on %s, this host is %s: its GOCACHE entries never hit here", rec.Ref, snap.Config.Arch, oci.HostArch()),
			Fix:     "key snapshots by architecture: push/pull --key 'go-{go}-{arch}-...'"}
	}
	have, from := "", ""
	if config != "" {
		if p, err := oci.GoPackage(config); err == nil && p != "" {
			have, from = p, config
		}
	}
	if have == "" {
		if v := localGoPackage(ctx); v != "" {
			have, from = v, "go env GOVERSION"
		}
	}
	msg := fmt.Sprintf("last snapshot %s (%s, Go %s)", rec.Ref, snap.Config.Arch, orUnknown(snap.Config.GoVersion))
	if snap.Config.GoVersion != "" && have != "" && snap.Config.GoVersion != have {
		return check{Name: "snapshot", Status: mount.CheckWarn,
			Message: fmt.Sprintf("%s: this build uses %s (from %s), so the restored build cache never hits", msg, have, from),
			Fix:     "key snapshots by Go version (--key 'go-{go}-{arch}-...' with --config), and share modules across versions with push/pull --only gomodcache"}
	}
	return check{Name: "snapshot", Status: mount.CheckPass, Message: msg}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// localGoPackage returns the local Go as melange's package name
// ("go1.26.3" gives "go-1.26"), "" when there is no go command.
func localGoPackage(ctx context.Context) string {
	cmd := exec.CommandContext(ctx, "go", "env", "GOVERSION")
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "go")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return ""
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i] // "26rc1" is go-1.26
	}
	return "go-" + parts[0] + "." + minor
}

// restoreFix is the fix status and doctor give for a pending restore.
func restoreFix(l mount.Layout, p *oci.PendingRestore) string {
	if p.Invalid != "" {
		return "remove " + p.Journal + " and " + p.Staging + " (melcache did not write that journal; check what else the build changed)"
	}
	return "run melcache pull --dir " + l.Dir + " REF (or push): it finishes or rolls back the interrupted restore before anything else " +
		"(verify, prune, clean and mark do too; a swap that cannot finish is undone); if the staging dir stays, remove " + p.Staging + " as its owner or root"
}
