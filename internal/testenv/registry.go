package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// registryStartTimeout bounds how long a test waits for docker-registry to
// answer /v2/; it starts in well under a second here, so 30s only trips on a
// broken install.
const registryStartTimeout = 30 * time.Second

// Registry is a real distribution registry (Debian's docker-registry) running
// on a loopback port for one test.
type Registry struct {
	// Host is "127.0.0.1:PORT".
	Host string
	// Root is the registry's storage directory.
	Root string
	// LogPath is the file holding the registry's stdout and stderr, access
	// log included.
	LogPath string
}

// RegistryOptions configure StartRegistry.
type RegistryOptions struct {
	// ExtraConfig is appended to the generated config.yml (e.g. an auth or
	// tls section under http).
	ExtraConfig string
	// HTTPExtra is appended under the http: section (indented by the caller
	// with two spaces), e.g. a tls: block.
	HTTPExtra string
}

// StartRegistry starts docker-registry on a free loopback port with a fresh
// storage directory, and stops it when the test ends.
func StartRegistry(t testing.TB, o RegistryOptions) *Registry {
	t.Helper()
	bin := RequireTool(t, "docker-registry")
	// The registry's own directory, removed by the same cleanup that stops
	// it, after the process is killed and waited for: a registry still
	// writing (uploads, its log) into a directory being removed makes the
	// removal fail with "directory not empty". Not t.TempDir, whose
	// removal order relative to this cleanup depends on when the test
	// first called it.
	dir, err := os.MkdirTemp("", "melcache-registry-")
	if err != nil {
		t.Fatal(err)
	}
	removeDir := func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the registry's directory: %v", err)
		}
	}
	port := freePort(t)
	r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), Root: filepath.Join(dir, "storage"),
		LogPath: filepath.Join(dir, "registry.log")}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
%s
%s`, r.Root, r.Host, o.HTTPExtra, o.ExtraConfig)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		removeDir()
		t.Fatal(err)
	}
	logf, err := os.Create(r.LogPath)
	if err != nil {
		removeDir()
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		removeDir()
		t.Fatalf("start docker-registry: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	// One cleanup, in order: stop the process, wait for it, close its log,
	// then remove its directory.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		logf.Close()
		removeDir()
	})
	deadline := time.Now().Add(registryStartTimeout)
	for {
		select {
		case <-done:
			b, _ := os.ReadFile(r.LogPath)
			t.Fatalf("docker-registry exited at start:\n%s", b)
		default:
		}
		c, err := net.DialTimeout("tcp", r.Host, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not listen on %s within %v", r.Host, registryStartTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o.HTTPExtra == "" {
		ctx, cancel := context.WithTimeout(context.Background(), registryStartTimeout)
		defer cancel()
		for {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+r.Host+"/v2/", nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("docker-registry on %s: %v", r.Host, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return r
}

// Requests returns the access-log lines whose request line contains method
// and a path containing pathPart, e.g. ("PUT", "/blobs/uploads/") counts
// completed blob uploads.
func (r *Registry) Requests(t testing.TB, method, pathPart string) []string {
	t.Helper()
	f, err := os.Open(r.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// Access-log lines look like: 127.0.0.1 - - [date] "PUT /v2/x/blobs/uploads/...?digest=... HTTP/1.1" 201 ...
		if i := strings.Index(line, `"`+method+" "); i >= 0 {
			rest := line[i+len(method)+2:]
			if j := strings.IndexByte(rest, ' '); j >= 0 && strings.Contains(rest[:j], pathPart) {
				out = append(out, line)
			}
		}
	}
	return out
}

var portMu sync.Mutex

func freePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
