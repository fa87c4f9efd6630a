package build

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

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
