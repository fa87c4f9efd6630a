package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/melcache/melcache/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/crypto/bcrypt"
)

// Credentials of the htpasswd-protected test registry.
const (
	opsRegistryUser     = "builder"
	opsRegistryPassword = "right-password"
)

// TestOpsScripts runs the scripts of the operations commands (doctor, gc,
// partial snapshots) in testdata/ops. Besides scriptParams' variables they
// get:
//
//	REG         a real docker-registry on loopback (deletes enabled), no auth
//	AUTHREG     a real docker-registry requiring user builder / right-password
//	            (htpasswd, bcrypt)
//	CLOSEDPORT  a loopback port nothing listens on
//
// Without docker-registry (outside CI) the registry scripts skip themselves
// ([missing:docker-registry]) and the others still run.
func TestOpsScripts(t *testing.T) {
	p := scriptParams(t, "testdata/ops")
	if _, err := exec.LookPath("docker-registry"); err != nil && !testenv.InCI() {
		testscript.Run(t, p)
		return
	}
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	hash, err := bcrypt.GenerateFromPassword([]byte(opsRegistryPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(opsRegistryUser+":"+string(hash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	authReg := testenv.StartRegistry(t, testenv.RegistryOptions{ExtraConfig: fmt.Sprintf(
		"auth:\n  htpasswd:\n    realm: melcache-test\n    path: %s\n", htpasswd)})
	closed := closedPort(t)

	setup := p.Setup
	p.Setup = func(e *testscript.Env) error {
		if err := setup(e); err != nil {
			return err
		}
		e.Setenv("REG", reg.Host)
		e.Setenv("AUTHREG", authReg.Host)
		e.Setenv("CLOSEDPORT", closed)
		// No credentials from the host's own docker config.
		e.Setenv("DOCKER_CONFIG", e.WorkDir+"/.docker")
		e.Setenv("HOME", e.WorkDir)
		k, v, _ := strings.Cut(testenv.GoConfigEnv(t), "=")
		e.Setenv(k, v)
		return nil
	}
	testscript.Run(t, p)
}

// closedPort returns "127.0.0.1:PORT" for a port that was free a moment ago
// and is closed now: a registry there refuses connections.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
