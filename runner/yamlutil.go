package runner

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parseDoc parses exactly one YAML document and returns its root node
// (yamlx.ParseOne), with errors as *ConfigError in file.
func parseDoc(file string, data []byte) (*yaml.Node, error) {
	n, err := yamlx.ParseOne(data)
	var ye *yamlx.Error
	if errors.As(err, &ye) {
		return nil, &ConfigError{File: file, Line: ye.Line, Msg: ye.Msg}
	}
	return n, err
}

// scalarVars converts YAML var nodes to strings; only scalars are allowed.
func scalarVars(file, path string, m map[string]yaml.Node) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for k, n := range m {
		if n.Kind != yaml.ScalarNode {
			return nil, &ConfigError{File: file, Line: n.Line, Key: yamlx.Join(path, k), Msg: "variables must be single values (string, number or bool)"}
		}
		out[k] = n.Value
	}
	return out, nil
}

func keyLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("bad boolean %q", s)
}
