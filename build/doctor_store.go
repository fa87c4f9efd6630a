package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/melcache/melcache/mount"
	"github.com/melcache/melcache/oci"
)

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
		if v, err := oci.PinnedGoVersion(config); err == nil {
			have, from = v, config
		}
	}
	if have == "" {
		if v := localGoVersion(ctx); v != "" {
			have, from = v, "go env GOVERSION"
		}
	}
	// Snapshots before issue 12 recorded the package name (go-1.26, or an
	// unpinned "go", which says nothing): compare minor versions.
	snapGo := snapshotGoVersion(snap.Config.GoVersion)
	msg := fmt.Sprintf("last snapshot %s (%s, Go %s)", rec.Ref, snap.Config.Arch, orUnknown(snapGo))
	if snapGo != "" && have != "" && snapGo != have {
		return check{Name: "snapshot", Status: mount.CheckWarn,
			Message: fmt.Sprintf("%s: this build uses Go %s (from %s), so the restored build cache never hits", msg, have, from),
			Fix:     "key snapshots by Go version (--key 'go-{go}-{arch}-...' with --config), and share modules across versions with push/pull --only gomodcache"}
	}
	return check{Name: "snapshot", Status: mount.CheckPass, Message: msg}
}

// snapshotGoVersion is a snapshot config's goVersion as a minor version:
// "1.26" as written now, "go-1.26" as older snapshots wrote it; "" for
// an unknown or unpinned ("go") one.
func snapshotGoVersion(v string) string {
	if v == "" || v == "go" {
		return ""
	}
	m, err := ParseGoVersion(v)
	if err != nil {
		return ""
	}
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// localGoVersion returns the local Go's minor version ("go1.26.3" gives
// "1.26"), "" when there is no go command.
func localGoVersion(ctx context.Context) string {
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
	return parts[0] + "." + minor
}
