package steps

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

// valueNode returns the value node of key in mapping n, or n itself when absent,
// so that errors about a parameter point at its line.
func valueNode(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

// paramExpander expands a step's string parameters and positions errors.
type paramExpander struct {
	n    *yaml.Node
	x    Expander
	step string
}

// text expands s as data; def is used when s is empty.
func (p paramExpander) text(key, s, def string) (string, error) {
	if s == "" {
		return def, nil
	}
	v, err := p.x.Text(s)
	if err != nil {
		return "", posErr(valueNode(p.n, key), yamlx.Join(p.step, key), err)
	}
	return v, nil
}

// abs expands s as an absolute path on the host; def is used when s is empty.
func (p paramExpander) abs(key, s, def string) (string, error) {
	v, err := p.text(key, s, def)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(v, "/") {
		return "", yamlx.Errorf(valueNode(p.n, key), yamlx.Join(p.step, key), "must be an absolute path, not %q", v)
	}
	return path.Clean(v), nil
}

// list expands every element of l.
func (p paramExpander) list(key string, l []string) ([]string, error) {
	out := make([]string, 0, len(l))
	for i, s := range l {
		v, err := p.x.Text(s)
		if err != nil {
			return nil, posErr(valueNode(p.n, key), fmt.Sprintf("%s[%d]", yamlx.Join(p.step, key), i), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// errorf positions a validation error at key.
func (p paramExpander) errorf(key, format string, a ...any) error {
	return yamlx.Errorf(valueNode(p.n, key), yamlx.Join(p.step, key), format, a...)
}

// dur returns d, or def when d is nil.
func dur(d *yamlx.Duration, def yamlx.Duration) yamlx.Duration {
	if d == nil {
		return def
	}
	return *d
}

// boolOr returns *b, or def when b is nil.
func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// decodeParams is yamlx.Decode, but a value of the wrong type is reported at
// its own line and key (for example "renew_certs.only_within") rather than
// at the step's mapping.
func decodeParams(n *yaml.Node, out any, step string) error {
	err := yamlx.Decode(n, out, step)
	var ye *yamlx.Error
	if err == nil || !errors.As(err, &ye) || ye.Key != step {
		return err
	}
	m := n
	if m.Kind == yaml.DocumentNode && len(m.Content) == 1 {
		m = m.Content[0]
	}
	if m.Kind != yaml.MappingNode {
		return err
	}
	t := reflect.TypeOf(out).Elem()
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		for j := 0; j < t.NumField(); j++ {
			name, _, _ := strings.Cut(t.Field(j).Tag.Get("yaml"), ",")
			if name != k.Value {
				continue
			}
			if derr := v.Decode(reflect.New(t.Field(j).Type).Interface()); derr != nil {
				msg := derr.Error()
				var te *yaml.TypeError
				if errors.As(derr, &te) && len(te.Errors) > 0 {
					msg = strings.Join(te.Errors, "; ")
				}
				if _, after, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
					msg = after
				}
				return yamlx.Errorf(v, yamlx.Join(step, k.Value), "%s", msg)
			}
		}
	}
	return err
}
