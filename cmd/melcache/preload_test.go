package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/melangetest"
	"github.com/melcache/melcache/internal/testenv"
	"github.com/melcache/melcache/mount"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestPreloadScripts runs the preload command's scripts: its usage and the
// errors a user meets, none of which needs a network.
func TestPreloadScripts(t *testing.T) {
	testscript.Run(t, scriptParams(t, "testdata/preload"))
}

// TestPreloadCommand runs `melcache preload --json` on a copy of the test
// module with modules served by a file:// GOPROXY taken from the
// environment, and checks the JSON report and the filled module cache.
func TestPreloadCommand(t *testing.T) {
	t.Setenv("GOPROXY", melangetest.FileProxy(t))
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOTOOLCHAIN", "local")
	t.Setenv("GOFLAGS", "-mod=mod")
	work := testenv.TempDir(t)
	src := melangetest.CopyModule(t, filepath.Join(work, "src"))
	var stdout, stderr bytes.Buffer
	g := &globals{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	dir := filepath.Join(work, "cache")
	if code := run(context.Background(), g, []string{"preload", "--dir", dir, "--source", src, "--json"}); code != 0 {
		t.Fatalf("melcache preload: exit %d\n%s", code, stderr.String())
	}
	var res mount.PreloadResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("preload --json output: %v\n%s", err, stdout.String())
	}
	if len(res.Modules) != 1 || res.Modules[0].Path != "example.com/hello" || res.Modules[0].New < 3 {
		t.Errorf("preload result %+v, want example.com/hello with its modules downloaded", res.Modules)
	}
	if res.ModCache != filepath.Join(dir, "gomodcache") {
		t.Errorf("modcache %s, want %s", res.ModCache, filepath.Join(dir, "gomodcache"))
	}
	zip := filepath.Join(dir, "gomodcache", "cache", "download", "golang.org", "x", "mod", "@v", "v0.42.0.zip")
	if _, err := os.Stat(zip); err != nil {
		t.Errorf("golang.org/x/mod not in the module cache: %v", err)
	}
}
