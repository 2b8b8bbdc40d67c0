package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
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

// parseDoc parses exactly one YAML document and returns its root node.
func parseDoc(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, &ConfigError{File: file, Line: yamlErrLine(err), Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &ConfigError{File: file, Line: extra.Line, Msg: "more than one YAML document; kplay reads exactly one"}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// yamlErrLine extracts "line N" from a yaml.v3 syntax error.
func yamlErrLine(err error) int {
	s := err.Error()
	i := strings.Index(s, "line ")
	if i < 0 {
		return 0
	}
	j := i + 5
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(s[i+5 : j])
	return n
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
