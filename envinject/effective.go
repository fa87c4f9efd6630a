package envinject

import "gopkg.in/yaml.v3"

// Where a cache setting comes from.
const (
	FromYAML    = "yaml"     // the config's top-level environment.environment
	FromEnvFile = "env-file" // a melange --env-file (the YAML wins over it)
	FromDefault = "default"  // melange's default (GOMODCACHE) or Go's (GOCACHE)
)

// Setting is the value one cache variable has in a melange build.
type Setting struct {
	Value string
	From  string // FromYAML, FromEnvFile or FromDefault
	// Line and Col locate the YAML key when From is FromYAML.
	Line, Col int
	// Persists reports whether the path is under GuestRoot, the directory
	// melange mounts from the host: anything else is thrown away with the
	// build workspace.
	Persists bool
}

// Caches are the GOMODCACHE and GOCACHE a melange build of a config really
// uses.
type Caches struct {
	GoModCache, GoCache Setting
	// GoBuildSteps reports that the config uses go/build pipelines, which
	// export GOMODCACHE=DefaultGoModCache themselves: those steps use that
	// path whatever GoModCache says.
	GoBuildSteps bool
}

// EffectiveCaches reports the cache paths a melange build of the config src
// will use, given the variables of the --env-file melange gets (nil for
// none). melange applies, in order of precedence: the YAML's top-level
// environment.environment, then --env-file, then its own defaults
// (GOMODCACHE=/var/cache/melange/gomodcache; no GOCACHE, so Go uses
// $HOME/.cache/go-build with HOME=/home/build).
func EffectiveCaches(src []byte, envFile []Var) (Caches, error) {
	d, err := parse(src)
	if err != nil {
		return Caches{}, err
	}
	cfg, _ := d.config() // as Inject: a value of the wrong type is melange's to refuse
	var vars *yaml.Node
	if env := resolve(lookup(d.root, "environment")); env != nil {
		vars = resolve(lookup(env, "environment"))
	}
	get := func(key, def string) Setting {
		if k, v := mapGet(vars, key); k != nil && resolve(v).Kind == yaml.ScalarNode {
			val := resolve(v).Value
			return Setting{Value: val, From: FromYAML, Line: k.Line, Col: d.t.byteCol(k.Line, k.Column), Persists: underGuestRoot(expand(val))}
		}
		if v := mergedGet(vars, key); v != nil && resolve(v).Kind == yaml.ScalarNode {
			val := resolve(v).Value
			return Setting{Value: val, From: FromYAML, Line: v.Line, Col: d.t.byteCol(v.Line, v.Column), Persists: underGuestRoot(expand(val))}
		}
		s := Setting{Value: def, From: FromDefault}
		for _, ev := range envFile {
			if ev.Key == key {
				s = Setting{Value: ev.Value, From: FromEnvFile}
			}
		}
		s.Persists = underGuestRoot(expand(s.Value))
		return s
	}
	return Caches{
		GoModCache:   get("GOMODCACHE", melangeDefaultGoMod),
		GoCache:      get("GOCACHE", goDefaultGoCache),
		GoBuildSteps: cfg.goBuildUses() != nil,
	}, nil
}
