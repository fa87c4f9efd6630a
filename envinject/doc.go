// Package envinject rewrites melange YAML so that Go uses the caches melcache
// manages: it finds the environment maps with gopkg.in/yaml.v3 nodes and
// splices text into the original bytes, so the output differs from the input
// only in the lines added or changed. It also lints cache settings that
// conflict and emits env files for `melange build --env-file`.
package envinject
