package build

import (
	"path/filepath"
	"strings"
)

// MelangeArgs are the melange flags melcache must know about, read by Run
// (from the arguments after "--") and Doctor (also from the Makefile
// variables wolfi-style repositories pass). Run passes every argument on as
// given, except --cache-dir.
type MelangeArgs struct {
	// Args are passed to melange, --cache-dir removed.
	Args     []string
	CacheDir string
	Runner   string
	// Arch is the first architecture of --arch; the key's {arch}.
	Arch      string
	SourceDir string
	// EnvFiles are the --env-file values, in order (melange v0.43+).
	EnvFiles []string
	// Repositories are the --repository-append (-r) values, in order,
	// comma-separated lists split: where an unpinned go comes from.
	Repositories []string
}

// ParseMelangeArgs reads the flags of `melange build` (pkg/cli/build.go,
// pflag syntax: --flag value or --flag=value) that change what melcache
// does. A flag without its value is a *UsageError.
func ParseMelangeArgs(args []string) (MelangeArgs, error) {
	var m MelangeArgs
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		dst := m.field(name)
		if dst == nil {
			m.Args = append(m.Args, a)
			continue
		}
		tokens := []string{a}
		if !hasVal {
			if i+1 >= len(args) {
				return m, usageErrorf("melange flag %s needs a value", name)
			}
			i++
			val = args[i]
			tokens = append(tokens, val)
		}
		if name == "--arch" {
			// melange builds each listed arch in turn; the key's {arch}
			// takes the first (one cache per arch is the usual setup).
			if m.Arch != "" {
				val = m.Arch
			}
			val, _, _ = strings.Cut(val, ",")
		}
		*dst = val
		switch name {
		case "--env-file":
			m.EnvFiles = append(m.EnvFiles, val)
		case "--repository-append", "-r":
			for _, r := range strings.Split(val, ",") {
				if r = strings.TrimSpace(r); r != "" {
					m.Repositories = append(m.Repositories, r)
				}
			}
		}
		if name != "--cache-dir" {
			m.Args = append(m.Args, tokens...)
		}
	}
	return m, nil
}

// field returns where the value of the melange flag name goes, nil for a
// flag melcache passes on without reading.
func (m *MelangeArgs) field(name string) *string {
	switch name {
	case "--cache-dir":
		return &m.CacheDir
	case "--runner":
		return &m.Runner
	case "--arch":
		return &m.Arch
	case "--source-dir":
		return &m.SourceDir
	case "--env-file", "--repository-append", "-r":
		return new(string) // collected in EnvFiles, Repositories
	}
	return nil
}

// melangeOptsEnv are the Makefile variables wolfi-style repositories pass
// to melange build (MELANGE_OPTS to every melange command, MELANGE_BUILD_OPTS
// to builds); Doctor reads them from the environment, in that order, before
// the arguments after "--" (a later flag wins, as in melange).
var melangeOptsEnv = []string{"MELANGE_OPTS", "MELANGE_BUILD_OPTS"}

// MelangeCommandLine reads melange's command line as doctor sees it: the
// Makefile variables (MELANGE_OPTS, MELANGE_BUILD_OPTS) from getenv first,
// then after, the arguments after "--".
func MelangeCommandLine(after []string, getenv func(string) string) (MelangeArgs, error) {
	var args []string
	for _, v := range melangeOptsEnv {
		args = append(args, strings.Fields(getenv(v))...)
	}
	return ParseMelangeArgs(append(args, after...))
}

// SameDir reports whether a and b name the same directory once made
// absolute and clean (without resolving symlinks).
func SameDir(a, b string) bool {
	a, _ = filepath.Abs(a)
	b, _ = filepath.Abs(b)
	return filepath.Clean(a) == filepath.Clean(b)
}
