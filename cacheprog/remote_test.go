package cacheprog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// mapRemote is a Remote holding bodies by action; lie serves a body that
// does not match the output ID it claims.
type mapRemote struct {
	bodies map[ID][]byte
	lie    bool
	asked  int
}

func (m *mapRemote) Fetch(_ context.Context, action ID) (Fetched, error) {
	m.asked++
	b, ok := m.bodies[action]
	if !ok {
		return Fetched{}, ErrNotFound
	}
	out, _ := ParseID(outputOf(b))
	if m.lie {
		b = bytes.ToUpper(b)
	}
	return Fetched{OutputID: out, Size: int64(len(b)), Body: io.NopCloser(bytes.NewReader(b))}, nil
}

// TestStoreRemoteSeam: a local miss asks the Remote; what it returns is
// checked against its output ID, stored in Go's layout and then a local
// hit; a Remote that lies stores nothing; a Remote miss is a miss.
func TestStoreRemoteSeam(t *testing.T) {
	action, _ := ParseID(actionID("remote"))
	body := []byte("fetched object")
	for _, lie := range []bool{false, true} {
		var stats Stats
		remote := &mapRemote{bodies: map[ID][]byte{action: body}, lie: lie}
		dir := t.TempDir() + "/gocache"
		st, err := OpenStore(dir, StoreOptions{Remote: remote, Stats: &stats})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		obj, ok, err := st.Get(context.Background(), action)
		if lie {
			if err == nil || !strings.Contains(err.Error(), "SHA-256") || ok {
				t.Fatalf("lying remote: %+v, %v, %v", obj, ok, err)
			}
			if _, ok, _ := st.getLocal(action); ok {
				t.Fatal("a lying remote's object was stored")
			}
			continue
		}
		if err != nil || !ok {
			t.Fatalf("remote get: %v, %v", ok, err)
		}
		if got, _ := os.ReadFile(obj.DiskPath); !bytes.Equal(got, body) {
			t.Fatalf("DiskPath holds %q", got)
		}
		if _, ok, _ := st.Get(context.Background(), action); !ok || remote.asked != 1 {
			t.Fatalf("second get: hit %v, remote asked %d times, want a local hit", ok, remote.asked)
		}
		other, _ := ParseID(actionID("absent"))
		if _, ok, err := st.Get(context.Background(), other); ok || err != nil {
			t.Fatalf("remote miss: %v, %v", ok, err)
		}
		r := stats.Report()
		if r.RemoteFetches != 2 || r.RemoteBytes != int64(len(body)) {
			t.Errorf("stats %+v", r)
		}
	}
}

// errRemote fails every fetch.
type errRemote struct{}

func (errRemote) Fetch(context.Context, ID) (Fetched, error) {
	return Fetched{}, errors.New("registry down")
}

// TestStoreRemoteError: a failing Remote is an error answer naming the
// action, not a silent miss.
func TestStoreRemoteError(t *testing.T) {
	st, err := OpenStore(t.TempDir()+"/gocache", StoreOptions{Remote: errRemote{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	action, _ := ParseID(actionID("x"))
	if _, _, err := st.Get(context.Background(), action); err == nil || !strings.Contains(err.Error(), action.String()) {
		t.Fatalf("get with a failing remote: %v", err)
	}
}
