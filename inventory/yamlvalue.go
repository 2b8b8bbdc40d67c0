package inventory

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/kplay/kplay/internal/yamlx"
	"gopkg.in/yaml.v3"
)

// YAML 1.1 implicit types, as PyYAML (and so Ansible) resolves plain scalars.
var (
	yamlNull  = regexp.MustCompile(`^(?:~|null|Null|NULL|)$`)
	yamlBool  = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	yamlInt   = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	yamlFloat = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
)

// parseYAML parses exactly one YAML document and returns its root node,
// or nil for an empty document (yamlx.ParseOne), with errors as *Error in
// file.
func parseYAML(file string, data []byte) (*yaml.Node, error) {
	n, err := yamlx.ParseOne(data)
	var ye *yamlx.Error
	if errors.As(err, &ye) {
		return nil, &Error{Pos: Pos{file, ye.Line}, Msg: strings.Replace(ye.Msg, "kplay reads exactly one", "an inventory is one", 1)}
	}
	return n, err
}

// isNull reports whether n is a YAML null.
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 && (n.Tag == "!!null" || n.Tag == "" && yamlNull.MatchString(n.Value))
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// nodeValue converts a YAML node into the value PyYAML would build.
func nodeValue(file, key string, n *yaml.Node) (any, error) {
	n = deref(n)
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return scalarValue(file, key, n)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, err := nodeValue(file, fmt.Sprintf("%s[%d]", key, i), c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		m := map[string]any{}
		err := eachPair(file, key, n, func(k string, kn, vn *yaml.Node) error {
			v, err := nodeValue(file, joinKey(key, k), vn)
			m[k] = v
			return err
		})
		return m, err
	}
	return nil, errorf(Pos{file, n.Line}, key, "unsupported YAML node")
}

// yamlVar converts one variable's value node into a Var.
func yamlVar(file, key string, kn, vn *yaml.Node) (Var, error) {
	v, err := nodeValue(file, key, vn)
	x := Var{Value: v, Pos: Pos{file, kn.Line}}
	if d := deref(vn); d != nil && d.Kind == yaml.ScalarNode {
		x.Text = d.Value
	}
	return x, err
}

// eachPair calls f for each key of mapping n in order, following merge
// keys (<<) and refusing duplicate keys.
func eachPair(file, path string, n *yaml.Node, f func(k string, kn, vn *yaml.Node) error) error {
	seen := map[string]bool{}
	var merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Value == "<<" && kn.Tag == "!!merge" {
			for _, src := range mergeSources(vn) {
				for j := 0; j+1 < len(src.Content); j += 2 {
					merged = append(merged, [2]*yaml.Node{src.Content[j], src.Content[j+1]})
				}
			}
			continue
		}
		k, err := keyString(file, path, kn)
		if err != nil {
			return err
		}
		if seen[k] {
			return errorf(Pos{file, kn.Line}, joinKey(path, k), "duplicate key (Ansible would keep the last one and only warn)")
		}
		seen[k] = true
		if err := f(k, kn, vn); err != nil {
			return err
		}
	}
	for _, p := range merged {
		k, err := keyString(file, path, p[0])
		if err != nil {
			return err
		}
		if !seen[k] {
			seen[k] = true
			if err := f(k, p[0], p[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

func mergeSources(n *yaml.Node) []*yaml.Node {
	n = deref(n)
	if n.Kind == yaml.MappingNode {
		return []*yaml.Node{n}
	}
	var out []*yaml.Node
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			if c = deref(c); c.Kind == yaml.MappingNode {
				out = append(out, c)
			}
		}
	}
	return out
}

// keyString is a mapping key as Ansible names it (Python's str of the key,
// as json.dumps would print it).
func keyString(file, path string, kn *yaml.Node) (string, error) {
	kn = deref(kn)
	if kn.Kind != yaml.ScalarNode {
		return "", errorf(Pos{file, kn.Line}, path, "a key must be a single value")
	}
	v, err := scalarValue(file, path, kn)
	if err != nil {
		return "", err
	}
	return jsonKey(v), nil
}

// jsonKey formats a scalar map key as Python's json.dumps does.
func jsonKey(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case string:
		return x
	}
	return pyRepr(v)
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// scalarValue resolves a scalar node as PyYAML's YAML 1.1 resolver does.
func scalarValue(file, key string, n *yaml.Node) (any, error) {
	if n.Style&yaml.TaggedStyle != 0 {
		switch n.Tag {
		case "!vault":
			return nil, errorf(Pos{file, n.Line}, key, "Ansible Vault values are not supported")
		case "!unsafe", "!!str":
			return n.Value, nil
		}
		return nil, errorf(Pos{file, n.Line}, key, "unsupported YAML tag %s", n.Tag)
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Value, nil
	}
	s := n.Value
	switch {
	case yamlNull.MatchString(s):
		return nil, nil
	case yamlBool.MatchString(s):
		switch strings.ToLower(s) {
		case "yes", "true", "on":
			return true, nil
		}
		return false, nil
	case yamlInt.MatchString(s):
		if v, ok := yamlIntValue(s); ok {
			return v, nil
		}
	case yamlFloat.MatchString(s):
		return yamlFloatValue(s), nil
	}
	return s, nil
}

func yamlIntValue(s string) (int64, bool) {
	s = strings.ReplaceAll(s, "_", "")
	sign := int64(1)
	if s[0] == '-' || s[0] == '+' {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	if strings.Contains(s, ":") {
		var v int64
		for _, part := range strings.Split(s, ":") {
			d, err := strconv.ParseInt(part, 10, 64)
			if err != nil {
				return 0, false
			}
			v = v*60 + d
		}
		return sign * v, true
	}
	base := 10
	switch {
	case strings.HasPrefix(s, "0b"):
		base, s = 2, s[2:]
	case strings.HasPrefix(s, "0x"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base = 8
	}
	v, err := strconv.ParseInt(s, base, 64)
	return sign * v, err == nil
}

func yamlFloatValue(s string) float64 {
	s = strings.ToLower(strings.ReplaceAll(s, "_", ""))
	sign := 1.0
	if s[0] == '-' || s[0] == '+' {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	switch s {
	case ".inf":
		return sign * math.Inf(1)
	case ".nan":
		return math.NaN()
	}
	if strings.Contains(s, ":") {
		parts := strings.Split(s, ":")
		var v float64
		for _, p := range parts {
			d, _ := strconv.ParseFloat(p, 64)
			v = v*60 + d
		}
		return sign * v
	}
	v, _ := strconv.ParseFloat(s, 64)
	return sign * v
}
