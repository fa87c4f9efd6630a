package envinject

import (
	"fmt"
	"io"
	"strings"
)

// WriteEnvFile writes vars as an env file for `melange build --env-file`:
// one KEY=VALUE line each, unquoted. Values that would need quoting (spaces,
// quotes, #, $, backslashes) are refused rather than written in a dialect
// the reader may not share. Variables the YAML's environment.environment
// also sets are overridden by the YAML.
func WriteEnvFile(w io.Writer, vars []Var) error {
	var b strings.Builder
	for _, v := range vars {
		if err := checkVar(v); err != nil {
			return err
		}
		if strings.ContainsAny(v.Value, " \t\"'#$\\`") {
			return fmt.Errorf("%s=%q: env files cannot carry this value unquoted; inject it into the YAML instead", v.Key, v.Value)
		}
		b.WriteString(v.Key + "=" + v.Value + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
