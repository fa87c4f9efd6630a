package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/pflag"
)

// buildOptions are the `melange build` flags the stand-in understands.
type buildOptions struct {
	config         string
	cacheDir       string
	envFiles       []string
	archs          []string
	runner         string
	workspaceDir   string
	sourceDir      string
	debug          bool
	remove         bool
	emptyWorkspace bool
}

// defaultCacheDir is melange's --cache-dir default (pkg/cli/build.go:
// "./melange-cache/").
const defaultCacheDir = "./melange-cache/"

// parseBuildFlags parses the arguments of `melange build` the way
// pkg/cli/build.go declares them (cobra/pflag: flags may come before or after
// the config path, as --flag value or --flag=value).
func parseBuildFlags(args []string) (buildOptions, error) {
	var o buildOptions
	fs := pflag.NewFlagSet("melange build", pflag.ContinueOnError)
	fs.StringVar(&o.cacheDir, "cache-dir", defaultCacheDir, "directory used for cached inputs")
	// --env-file is repeatable since melange v0.43 (docs/background.md); each later
	// file overrides the earlier ones, as godotenv.Read does for several files.
	fs.StringArrayVar(&o.envFiles, "env-file", nil, "file to use for preloaded environment variables")
	fs.StringSliceVar(&o.archs, "arch", nil, "architectures to build for")
	fs.StringVar(&o.runner, "runner", "", "which runner to use (only bubblewrap)")
	fs.StringVar(&o.workspaceDir, "workspace-dir", "", "directory used for the workspace at /home/build")
	fs.StringVar(&o.sourceDir, "source-dir", "", "directory used for included sources")
	fs.BoolVar(&o.debug, "debug", false, "enables debug logging of build pipelines")
	fs.BoolVar(&o.remove, "rm", true, "clean up intermediate artifacts")
	fs.BoolVar(&o.emptyWorkspace, "empty-workspace", false, "whether the build workspace should be empty")
	// Accepted so that real command lines work, but without effect here: the
	// stand-in installs no packages and writes no APK.
	for _, name := range []string{"out-dir", "signing-key", "namespace", "pipeline-dir", "apk-cache-dir",
		"build-date", "git-commit", "git-repo-url", "license", "vars-file", "cache-source", "guest-dir"} {
		fs.String(name, "", "ignored by the stand-in")
	}
	fs.StringSliceP("keyring-append", "k", nil, "ignored by the stand-in")
	fs.StringSliceP("repository-append", "r", nil, "ignored by the stand-in")
	fs.StringSlice("package-append", nil, "ignored by the stand-in")
	fs.Bool("generate-index", true, "ignored by the stand-in")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch fs.NArg() {
	case 0:
		// pkg/build/build.go looks for melange.yaml when no config is given;
		// the stand-in insists on an explicit path.
		return o, fmt.Errorf("melange.yaml is missing: give the config path")
	case 1:
		o.config = fs.Arg(0)
	default:
		return o, fmt.Errorf("accepts at most 1 arg(s), received %d", fs.NArg())
	}
	if o.runner != "" && o.runner != "bubblewrap" {
		return o, fmt.Errorf("runner %q: the stand-in implements only the bubblewrap runner", o.runner)
	}
	// pkg/cli/build.go: with a config and no --source-dir, the sources are
	// the config file's directory.
	if o.sourceDir == "" {
		o.sourceDir = filepath.Dir(o.config)
	}
	for _, a := range o.archs {
		if normalizeArch(a) != hostArch() {
			return o, fmt.Errorf("--arch %s: the stand-in builds only for the host (%s); bubblewrap cannot emulate", a, hostArch())
		}
	}
	return o, nil
}

// hostArch is the host architecture in melange's (APK) naming.
func hostArch() string { return normalizeArch(runtime.GOARCH) }

// normalizeArch maps Go and APK architecture names to APK names
// (apko's types.ParseArchitecture, used by pkg/cli/build.go).
func normalizeArch(a string) string {
	switch strings.ToLower(a) {
	case "amd64", "x86_64":
		return "x86_64"
	case "arm64", "aarch64":
		return "aarch64"
	}
	return a
}
