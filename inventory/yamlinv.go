package inventory

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// yamlParser reads one YAML inventory file into inv, as Ansible's yaml
// inventory plugin does. Where Ansible warns and skips (an unknown key in a
// group, a group that is not a mapping), kplay refuses: a skipped line is a
// misread inventory.
type yamlParser struct {
	inv  *Inventory
	file string
}

// errNotYAMLInventory means the file parsed as YAML but is not a YAML
// inventory (not a mapping), so Ansible would try it as INI.
type errNotYAMLInventory struct{ err *Error }

func (e *errNotYAMLInventory) Error() string { return e.err.Error() }

func (p *yamlParser) parse(root *yaml.Node) error {
	root = deref(root)
	if root == nil {
		return &errNotYAMLInventory{errorf(Pos{p.file, 0}, "", "inventory is empty")}
	}
	if root.Kind != yaml.MappingNode {
		return &errNotYAMLInventory{errorf(Pos{p.file, root.Line}, "", "a YAML inventory must be a mapping of groups (usually all:)")}
	}
	if pn := mapGet(root, "plugin"); pn != nil && !isNull(pn) {
		return errorf(Pos{p.file, pn.Line}, "plugin", "inventory plugins are not supported; give kplay a YAML or INI inventory")
	}
	return eachPair(p.file, "", root, func(k string, kn, vn *yaml.Node) error {
		_, err := p.group(k, kn, vn, k)
		return err
	})
}

// group reads one group definition and returns the group.
func (p *yamlParser) group(name string, kn, n *yaml.Node, path string) (*Group, error) {
	n = deref(n)
	pos := Pos{p.file, kn.Line}
	if !isNull(n) && n.Kind != yaml.MappingNode {
		return nil, errorf(pos, path, "a group must be a mapping with hosts, children or vars")
	}
	if name == "" {
		return nil, errorf(pos, path, "empty group name")
	}
	g := p.inv.addGroup(name, pos)
	if isNull(n) {
		return g, nil
	}
	err := eachPair(p.file, path, n, func(k string, skn, sv *yaml.Node) error {
		sub := joinKey(path, k)
		sv = deref(sv)
		if k != "hosts" && k != "children" && k != "vars" {
			return errorf(Pos{p.file, skn.Line}, sub, "unknown key in a group (known: hosts, children, vars)")
		}
		if isNull(sv) {
			return nil
		}
		if sv.Kind == yaml.ScalarNode {
			// Ansible reads "hosts: name" as "hosts: {name: }".
			sv = &yaml.Node{Kind: yaml.MappingNode, Line: sv.Line, Content: []*yaml.Node{sv, {Kind: yaml.ScalarNode, Tag: "!!null", Line: sv.Line}}}
		}
		if sv.Kind != yaml.MappingNode {
			return errorf(Pos{p.file, sv.Line}, sub, "must be a mapping")
		}
		switch k {
		case "vars":
			return p.groupVars(g, sv, sub)
		case "children":
			return eachPair(p.file, sub, sv, func(cn string, ckn, cv *yaml.Node) error {
				child, err := p.group(cn, ckn, cv, joinKey(sub, cn))
				if err != nil {
					return err
				}
				return p.inv.addChild(g, child, Pos{p.file, ckn.Line})
			})
		default:
			return eachPair(p.file, sub, sv, func(pattern string, hkn, hv *yaml.Node) error {
				return p.hosts(g, pattern, hkn, hv, joinKey(sub, pattern))
			})
		}
	})
	return g, err
}

func (p *yamlParser) groupVars(g *Group, n *yaml.Node, path string) error {
	return eachPair(p.file, path, n, func(k string, kn, vn *yaml.Node) error {
		v, err := yamlVar(p.file, joinKey(path, k), kn, vn)
		if err != nil {
			return err
		}
		return setGroupVar(g, k, v, joinKey(path, k))
	})
}

// hosts reads one host entry (a name, a range, maybe with a port) and its vars.
func (p *yamlParser) hosts(g *Group, pattern string, kn, n *yaml.Node, path string) error {
	pos := Pos{p.file, kn.Line}
	if kv, _ := scalarValue(p.file, path, deref(kn)); kv != nil {
		if _, isStr := kv.(string); !isStr {
			return errorf(pos, path, "host pattern %s must be a string: quote numbers", pattern)
		}
	}
	names, port, err := expandHostPattern(pattern, false)
	if err != nil {
		return &Error{Pos: pos, Key: path, Msg: "bad host pattern", Err: err}
	}
	n = deref(n)
	if !isNull(n) && n.Kind != yaml.MappingNode {
		return errorf(pos, path, "host variables must be a mapping")
	}
	var keys []string
	vars := Vars{}
	if !isNull(n) {
		err := eachPair(p.file, path, n, func(k string, vkn, vn *yaml.Node) error {
			v, err := yamlVar(p.file, joinKey(path, k), vkn, vn)
			keys, vars[k] = append(keys, k), v
			return err
		})
		if err != nil {
			return err
		}
	}
	for _, name := range names {
		h := p.inv.addHost(name, g, port, pos)
		for _, k := range keys {
			h.Vars[k] = vars[k]
		}
	}
	return nil
}

// setGroupVar sets a variable of an inventory group; ansible_group_priority
// sets the group's priority instead, as in Ansible.
func setGroupVar(g *Group, k string, v Var, key string) error {
	if k == "ansible_group_priority" {
		n, err := toInt(v.Value)
		if err != nil {
			return &Error{Pos: v.Pos, Key: key, Msg: "bad ansible_group_priority", Err: err}
		}
		g.Priority = n
		return nil
	}
	g.Vars[k] = v
	return nil
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int64:
		return int(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case float64:
		return int(x), nil
	case string:
		var n int
		if _, err := fmt.Sscanf(x, "%d", &n); err != nil || fmt.Sprint(n) != x {
			return 0, fmt.Errorf("%q is not an integer", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}

func mapGet(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
