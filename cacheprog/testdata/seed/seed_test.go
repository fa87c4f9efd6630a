package seed

import "testing"

func TestSeed(t *testing.T) {
	if Seed() != "SEED" {
		t.Fatal(Seed())
	}
}
