package main

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// configuration is the subset of melange's pkg/config/config.go
// Configuration the stand-in reads.
type configuration struct {
	Package struct {
		Name    string `yaml:"name"`
		Version string `yaml:"version"`
		Epoch   uint64 `yaml:"epoch"`
	} `yaml:"package"`
	Environment struct {
		Contents struct {
			Packages []string `yaml:"packages"`
		} `yaml:"contents"`
		Environment map[string]string `yaml:"environment"`
		Accounts    struct {
			RunAs string `yaml:"run-as"`
		} `yaml:"accounts"`
	} `yaml:"environment"`
	Vars        map[string]string `yaml:"vars"`
	Pipeline    []pipeline        `yaml:"pipeline"`
	Subpackages []struct {
		Name     string     `yaml:"name"`
		Pipeline []pipeline `yaml:"pipeline"`
	} `yaml:"subpackages"`
}

// pipeline is one step (pkg/config/config.go Pipeline).
type pipeline struct {
	Name        string            `yaml:"name"`
	Uses        string            `yaml:"uses"`
	With        map[string]string `yaml:"with"`
	Runs        string            `yaml:"runs"`
	If          string            `yaml:"if"`
	WorkDir     string            `yaml:"working-directory"`
	Environment map[string]string `yaml:"environment"`
	Pipeline    []pipeline        `yaml:"pipeline"`
}

// identity names a step in log lines (pkg/build/pipeline.go identity: the
// name, else the uses, else "???").
func (p *pipeline) identity() string {
	switch {
	case p.Name != "":
		return p.Name
	case p.Uses != "":
		return p.Uses
	}
	return "???"
}

// Defaults melange sets when the merged environment leaves them empty
// (pkg/config/config.go ParseConfiguration, setIfEmpty). melange sets no
// GOCACHE: that is the gap melcache fills.
const (
	defaultEnvVarHOME       = "/home/build"
	defaultEnvVarGOPATH     = "/home/build/.cache/go"
	defaultEnvVarGOMODCACHE = "/var/cache/melange/gomodcache"
)

// loadConfig parses path and computes the build environment:
// env-files first (each later file overriding), the YAML's
// environment.environment on top, then melange's defaults where empty
// (pkg/config/config.go ParseConfiguration: "Overlay the environment in the
// YAML on top as override", then setIfEmpty).
func loadConfig(path string, envFiles []string) (*configuration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to load configuration: %w", err)
	}
	var cfg configuration
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("failed to load configuration: %s: %w", path, err)
	}
	if cfg.Package.Name == "" {
		return nil, fmt.Errorf("failed to load configuration: %s: package.name is required", path)
	}
	env := map[string]string{}
	for _, f := range envFiles {
		m, err := readEnvFile(f)
		if err != nil {
			return nil, fmt.Errorf("loading environment file: %w", err)
		}
		maps.Copy(env, m)
	}
	maps.Copy(env, cfg.Environment.Environment)
	setIfEmpty := func(k, v string) {
		if env[k] == "" {
			env[k] = v
		}
	}
	setIfEmpty("HOME", defaultEnvVarHOME)
	setIfEmpty("GOPATH", defaultEnvVarGOPATH)
	setIfEmpty("GOMODCACHE", defaultEnvVarGOMODCACHE)
	cfg.Environment.Environment = env
	return &cfg, nil
}

// readEnvFile reads a dotenv file the way melange's godotenv.Read does for
// the forms melcache and wolfi write: KEY=VALUE (or KEY: VALUE), optional
// "export ", blank lines and # comments, single- or double-quoted values,
// and " #" comments after unquoted values.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("%s:%d: expected KEY=VALUE", path, n)
		}
		k, v := strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
		switch {
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			uq, err := strconv.Unquote(v)
			if err != nil {
				uq = v[1 : len(v)-1]
			}
			v = uq
		default:
			if j := strings.Index(v, " #"); j >= 0 {
				v = strings.TrimSpace(v[:j])
			}
		}
		m[k] = v
	}
	return m, sc.Err()
}

// substitutions is the ${{...}} map of pkg/build/pipeline.go
// NewSubstitutionMap, for the keys the stand-in supports.
func substitutions(cfg *configuration, arch, contextDir string) (map[string]string, error) {
	p := cfg.Package
	out := "/home/build/melange-out/"
	m := map[string]string{
		"${{package.name}}":         p.Name,
		"${{package.version}}":      p.Version,
		"${{package.epoch}}":        strconv.FormatUint(p.Epoch, 10),
		"${{package.full-version}}": fmt.Sprintf("%s-r%d", p.Version, p.Epoch),
		"${{targets.outdir}}":       strings.TrimSuffix(out, "/"),
		"${{targets.destdir}}":      out + p.Name,
		"${{targets.contextdir}}":   out + contextDir,
		"${{build.arch}}":           arch,
		"${{build.goarch}}":         goArch(arch),
	}
	m["${{targets.package."+p.Name+"}}"] = out + p.Name
	for _, sp := range cfg.Subpackages {
		m["${{targets.package."+sp.Name+"}}"] = out + sp.Name
	}
	if contextDir != p.Name {
		m["${{targets.subpkgdir}}"] = out + contextDir
	}
	for k, v := range cfg.Vars {
		nv, err := mutate(m, v)
		if err != nil {
			return nil, err
		}
		m["${{vars."+k+"}}"] = nv
	}
	return m, nil
}

func goArch(apk string) string {
	switch apk {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return apk
}

// mutate replaces every ${{key}} in s from m, failing on an undefined key
// like pkg/util MutateStringFromMap ("variable %s not defined").
func mutate(m map[string]string, s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		key := strings.TrimSpace(s[i+3 : i+j])
		v, ok := m["${{"+key+"}}"]
		if !ok {
			return "", fmt.Errorf("variable %s not defined", key)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+2:]
	}
}

// withInputs returns m plus ${{inputs.K}} for each input, the input values
// themselves substituted (pkg/build/pipeline.go SubstitutionMap.MutateWith).
func withInputs(m map[string]string, with map[string]string) (map[string]string, error) {
	nw := maps.Clone(m)
	for k, v := range with {
		nv, err := mutate(m, v)
		if err != nil {
			return nil, err
		}
		nw["${{inputs."+k+"}}"] = nv
	}
	return nw, nil
}
