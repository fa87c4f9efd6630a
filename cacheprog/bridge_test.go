package cacheprog

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestListenForward: Listen replaces whatever the build planted at the
// socket's name (a link to a file outside is removed, its target kept),
// and a forwarder's bytes reach a Host: the handshake and a miss come back
// through it; closing the listener removes the socket.
func TestListenForward(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	victim := filepath.Join(base, "victim")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "sock")); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(dir, "sock")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "sock")); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket: %v, %v; want a socket only its owner may connect to", fi, err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("planted link's target changed: %q", b)
	}
	st, err := OpenStore(filepath.Join(base, "gocache"), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	served := make(chan error, 1)
	go func() { served <- (&Host{Backend: st}).Serve(context.Background(), ln) }()

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	fwd := make(chan error, 1)
	go func() { fwd <- Forward(context.Background(), filepath.Join(dir, "sock"), inR, outW); outW.Close() }()
	dec := json.NewDecoder(bufio.NewReader(outR))
	var res Response
	if err := dec.Decode(&res); err != nil || len(res.KnownCommands) != 3 {
		t.Fatalf("handshake through the forwarder: %+v, %v", res, err)
	}
	req, _ := json.Marshal(Request{ID: 1, Command: CmdGet, ActionID: actionID("a")})
	io.WriteString(inW, string(req)+"\n\n")
	if err := dec.Decode(&res); err != nil || res.ID != 1 || !res.Miss {
		t.Fatalf("get through the forwarder: %+v, %v", res, err)
	}
	inW.Close() // the go command closes its end: the forwarder ends
	if err := <-fwd; err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sock")); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}

// TestListenRefusesLinkedDir: a state dir that is a link is not followed.
func TestListenRefusesLinkedDir(t *testing.T) {
	base := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(base, "state")); err != nil {
		t.Fatal(err)
	}
	if ln, err := Listen(filepath.Join(base, "state"), "sock"); err == nil {
		ln.Close()
		t.Fatal("Listen followed a linked directory")
	}
}
