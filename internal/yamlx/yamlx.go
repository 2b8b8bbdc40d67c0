// Package yamlx decodes YAML nodes strictly: every mapping key must match a
// field, and errors carry the line and the key.
package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a decoding error at one place in a YAML document.
type Error struct {
	Line, Column int
	// Key is the dotted path of the offending key, if any.
	Key string
	// Msg says what is wrong.
	Msg string
}

// Error formats as "line L: key K: msg".
func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("line %d: key %q: %s", e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Errorf returns an *Error positioned at node n.
func Errorf(n *yaml.Node, key, format string, a ...any) *Error {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	return &Error{Line: line, Column: col, Key: key, Msg: fmt.Sprintf(format, a...)}
}

// Decode checks that every key in n matches a field of out (recursively, by
// yaml tags) and then decodes n into out. An empty or null node decodes to
// the zero value.
func Decode(n *yaml.Node, out any, path string) error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if err := check(n, reflect.TypeOf(out), path); err != nil {
		return err
	}
	if err := n.Decode(out); err != nil {
		var te *yaml.TypeError
		msg := err.Error()
		if asTypeError(err, &te) && len(te.Errors) > 0 {
			msg = strings.Join(te.Errors, "; ")
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		return &Error{Line: n.Line, Column: n.Column, Key: path, Msg: msg}
	}
	return nil
}

func asTypeError(err error, te **yaml.TypeError) bool {
	t, ok := err.(*yaml.TypeError)
	if ok {
		*te = t
	}
	return ok
}

// Join builds a dotted key path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func check(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		return check(n.Alias, t, path)
	}
	if n.Tag == "!!null" {
		return nil
	}
	if t == reflect.TypeOf(yaml.Node{}) {
		return nil
	}
	if reflect.PointerTo(t).Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()) {
		// Decode it here so that its error carries this key's path.
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			var ye *Error
			if errors.As(err, &ye) {
				return &Error{Line: n.Line, Column: n.Column, Key: path, Msg: ye.Msg}
			}
			return Errorf(n, path, "%v", err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return Errorf(n, path, "must be a mapping, not %s", kind(n))
		}
		fields := fieldsOf(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := Join(path, k.Value)
			if seen[k.Value] {
				return Errorf(k, kp, "duplicate key")
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				return Errorf(k, kp, "unknown key (known: %s)", strings.Join(sortedKeys(fields), ", "))
			}
			if err := check(v, ft, kp); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return Errorf(n, path, "must be a mapping, not %s", kind(n))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := Join(path, k.Value)
			if seen[k.Value] {
				return Errorf(k, kp, "duplicate key")
			}
			seen[k.Value] = true
			if err := check(v, t.Elem(), kp); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return Errorf(n, path, "must be a list, not %s", kind(n))
		}
		for i, c := range n.Content {
			if err := check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Interface:
		return nil
	default:
		if n.Kind != yaml.ScalarNode {
			return Errorf(n, path, "must be a single value, not %s", kind(n))
		}
	}
	return nil
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "this node"
}

func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if !f.IsExported() && !(f.Anonymous && strings.Contains(opts, "inline")) {
			continue
		}
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range fieldsOf(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	for i := 1; i < len(k); i++ {
		for j := i; j > 0 && k[j] < k[j-1]; j-- {
			k[j], k[j-1] = k[j-1], k[j]
		}
	}
	return k
}
