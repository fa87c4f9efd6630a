package build_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/melcache/melcache/build"
	"github.com/melcache/melcache/internal/fsutil"
	"github.com/melcache/melcache/mount"
)

// A build with a stand-in melange: Run prepares the cache dir, points Go at
// it with an env-file and runs melange with --cache-dir.
func ExampleRun() {
	dir, err := os.MkdirTemp("", "melcache-example-*")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	config := filepath.Join(dir, "pkg.yaml")
	if err := os.WriteFile(config, []byte("package:\n  name: hello\n  version: 1.0.0\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	l, err := mount.New(filepath.Join(dir, "cache"), mount.Options{})
	if err != nil {
		log.Fatal(err)
	}
	melange := build.RunnerFunc(func(_ context.Context, argv []string) (int, error) {
		fmt.Println(argv[1], filepath.Base(argv[2]), argv[3], argv[5])
		return 0, nil
	})
	rep, err := build.Run(context.Background(), build.Config{Layout: l, Config: config, Melange: "melange"},
		build.Options{Runner: melange})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit", rep.ExitCode, "GOCACHE", rep.GoCache)
	// Output:
	// build pkg.yaml --cache-dir --env-file
	// exit 0 GOCACHE /var/cache/melange/gocache
}

// The demo in a temporary directory, as `melcache demo` runs it from a
// clone of melcache (it needs the go command and the example's modules).
func ExampleDemo() {
	work, err := os.MkdirTemp("", "melcache-demo-*")
	if err != nil {
		log.Fatal(err)
	}
	defer fsutil.RemoveAll(work)
	rep, err := build.Demo(context.Background(), build.DemoOptions{Source: build.DemoSource, WorkDir: work})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("warm took %.0f%% of cold, %d compiles\n", rep.WarmPercent, rep.Warm.Compiles)
}

// Doctor on a cache dir that does not exist yet, for a build on the qemu
// runner without virtiofs: both are failed checks, with their fixes.
func ExampleDoctor() {
	rep, err := build.Doctor(context.Background(), build.DoctorOptions{
		Dir:         filepath.Join(os.TempDir(), "melcache-example-missing"),
		MelangeArgs: []string{"--runner", "qemu"},
		Getenv:      func(string) string { return "" },
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range rep.Checks {
		if c.Name == "runner" {
			fmt.Println(c.Status, c.Name)
		}
	}
	fmt.Println("ok:", rep.OK)
	// Output:
	// fail runner
	// ok: false
}
