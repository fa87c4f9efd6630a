package greet

import "testing"

func TestHello(t *testing.T) {
	if Hello("x") != "hello, X" {
		t.Fatal("bad")
	}
}
