// Package envinject owns melange YAML: it reads configs (ParseConfig) and
// rewrites them so that Go uses the caches melcache manages: it finds the
// environment maps with gopkg.in/yaml.v3 nodes and splices text into the
// original bytes, so the output differs from the input only in the lines
// added or changed. It also lints cache settings that
// conflict and emits env files for `melange build --env-file`.
//
// Entry points:
//
//   - Inject rewrites one config: Result.Out, what was set, what was kept
//     (values the user already set), lint Findings. Bad input is an *Error
//     with a line and column; YAML that is not a melange config is
//     ErrNotMelange.
//   - DefaultVars lists the variables Inject writes for some Options.
//   - WriteEnvFile writes them for `melange build --env-file`.
//   - EffectiveCaches reports which GOMODCACHE and GOCACHE a build of a
//     config really uses (YAML over env file over melange's defaults).
//   - Diff renders a unified diff between two versions of a file.
//   - ParseConfig and ReadConfig read a melange config: package, vars,
//     contents, environment, every pipeline's steps with positions, and
//     the Go package with its pinned version. They are melcache's one
//     reader of melange YAML: key templates, preload and doctor use it,
//     and Inject lints through it.
//
// Positions are 1-based lines and 1-based byte columns, as in Go's tools.
// docs/inject.md describes the rules and the lint findings.
package envinject
