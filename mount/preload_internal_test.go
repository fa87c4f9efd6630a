package mount

import "testing"

// TestGuestRelative maps go/build modroots, seen from a step's working
// directory in the guest, onto the git-checkout destination.
func TestGuestRelative(t *testing.T) {
	for _, tc := range []struct {
		dest, workdir, modroot, want string
	}{
		{".", "", ".", "."},
		{".", "", "cmd/tool", "cmd/tool"},
		{"src", "", "src/sub", "sub"},
		{"src", "/home/build/src", ".", "."},
		{"src", "src", "sub", "sub"},
		{"/home/build/src", "", "/home/build/src/x", "x"},
		{".", "/home/build/a", "../b", "b"},
	} {
		got, err := guestRelative(tc.dest, tc.workdir, tc.modroot)
		if err != nil || got != tc.want {
			t.Errorf("guestRelative(%q, %q, %q) = %q, %v; want %q", tc.dest, tc.workdir, tc.modroot, got, err, tc.want)
		}
	}
	for _, tc := range [][3]string{{"src", "", "other"}, {"src", "", "srcx"}, {".", "", "/elsewhere"}} {
		if got, err := guestRelative(tc[0], tc[1], tc[2]); err == nil {
			t.Errorf("guestRelative(%q, %q, %q) = %q, want an error (outside the checkout)", tc[0], tc[1], tc[2], got)
		}
	}
}
