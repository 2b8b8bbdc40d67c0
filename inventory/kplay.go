package inventory

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

// kplayKeys are the top-level keys of kplay's own inventory format; a YAML
// inventory with any of them is read as kplay's, not Ansible's.
var kplayKeys = []string{"defaults", "hosts", "groups", "group_vars", "vars"}

// isKplayFormat reports whether root is a kplay inventory.
func isKplayFormat(root *yaml.Node) bool {
	for i := 0; i+1 < len(root.Content); i += 2 {
		for _, k := range kplayKeys {
			if root.Content[i].Value == k {
				return true
			}
		}
	}
	return false
}

// kplayConn maps kplay's connection keys to the variables they stand for.
var kplayConn = [][2]string{
	{"address", "ansible_host"}, {"user", "ansible_user"}, {"port", "ansible_port"},
	{"key", "ansible_ssh_private_key_file"}, {"known_hosts", "kplay_known_hosts"},
	{"become", "ansible_become"}, {"connect_timeout", "kplay_connect_timeout"},
	{"proxy_jump", "kplay_proxy_jump"}, {"ssh_config", "kplay_ssh_config"},
	{"keepalive_interval", "kplay_keepalive_interval"}, {"keepalive_count_max", "kplay_keepalive_count_max"},
}

type kplayConnSettings struct {
	User           string          `yaml:"user"`
	Port           int             `yaml:"port"`
	Key            string          `yaml:"key"`
	KnownHosts     string          `yaml:"known_hosts"`
	Become         *bool           `yaml:"become"`
	ConnectTimeout *yamlx.Duration `yaml:"connect_timeout"`
	ProxyJump      string          `yaml:"proxy_jump"`
	SSHConfig      string          `yaml:"ssh_config"`
	// Keepalive: like OpenSSH's ServerAliveInterval and ServerAliveCountMax.
	KeepaliveInterval *yamlx.Duration `yaml:"keepalive_interval"`
	KeepaliveCountMax any             `yaml:"keepalive_count_max"` // checked with the host (runner)
}

type kplayHost struct {
	Address           string `yaml:"address"`
	kplayConnSettings `yaml:",inline"`
	Vars              map[string]yaml.Node `yaml:"vars"`
}

type kplayFile struct {
	Defaults  kplayConnSettings               `yaml:"defaults"`
	Hosts     map[string]kplayHost            `yaml:"hosts"`
	Groups    map[string][]string             `yaml:"groups"`
	GroupVars map[string]map[string]yaml.Node `yaml:"group_vars"`
	Vars      map[string]yaml.Node            `yaml:"vars"`
}

// kplayParser reads kplay's own inventory format into inv: connection
// settings become the ansible_* variables they stand for (defaults are
// all's), groups list hosts or other groups.
type kplayParser struct {
	inv  *Inventory
	file string
}

func (p *kplayParser) parse(root *yaml.Node) error {
	var f kplayFile
	if err := yamlx.Decode(root, &f, ""); err != nil {
		return p.yamlxErr(err)
	}
	all := p.inv.groups["all"]
	if err := p.vars(all.Vars, mapGet(root, "defaults"), "defaults", true); err != nil {
		return err
	}
	if err := p.vars(all.Vars, mapGet(root, "vars"), "vars", false); err != nil {
		return err
	}
	hosts := mapGet(root, "hosts")
	if hosts == nil || len(f.Hosts) == 0 {
		return errorf(Pos{p.file, root.Line}, "hosts", "inventory has no hosts")
	}
	for i := 0; i+1 < len(hosts.Content); i += 2 {
		kn, vn := hosts.Content[i], hosts.Content[i+1]
		h := p.inv.addHost(kn.Value, nil, 0, Pos{p.file, kn.Line})
		key := "hosts." + kn.Value
		if err := p.vars(h.Vars, vn, key, true); err != nil {
			return err
		}
		if err := p.vars(h.Vars, mapGet(vn, "vars"), key+".vars", false); err != nil {
			return err
		}
	}
	if err := p.groups(mapGet(root, "groups"), f.Groups); err != nil {
		return err
	}
	return p.groupVars(mapGet(root, "group_vars"))
}

func (p *kplayParser) yamlxErr(err error) error {
	var ye *yamlx.Error
	if errors.As(err, &ye) {
		return &Error{Pos: Pos{p.file, ye.Line}, Key: ye.Key, Msg: ye.Msg}
	}
	return &Error{Pos: Pos{File: p.file}, Msg: "bad inventory", Err: err}
}

// vars copies the variables of mapping n into dst: the connection keys
// when conn, every key otherwise.
func (p *kplayParser) vars(dst Vars, n *yaml.Node, path string, conn bool) error {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	return eachPair(p.file, path, n, func(k string, kn, vn *yaml.Node) error {
		name := k
		if conn {
			name = ""
			for _, c := range kplayConn {
				if c[0] == k {
					name = c[1]
				}
			}
			if name == "" {
				return nil
			}
		}
		v, err := yamlVar(p.file, joinKey(path, k), kn, vn)
		if err == nil {
			dst[name] = v
		}
		return err
	})
}

func (p *kplayParser) groups(n *yaml.Node, groups map[string][]string) error {
	if n == nil {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, kn := n.Content[i].Value, n.Content[i]
		if p.inv.hosts[name] != nil {
			return errorf(Pos{p.file, kn.Line}, "groups."+name, "a group cannot have the name of a host")
		}
		p.inv.addGroup(name, Pos{p.file, kn.Line})
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, members := n.Content[i].Value, n.Content[i+1]
		g := p.inv.groups[name]
		for j, m := range groups[name] {
			pos := Pos{p.file, members.Content[j].Line}
			if h := p.inv.hosts[m]; h != nil {
				p.inv.addHost(m, g, 0, pos)
				continue
			}
			if _, ok := groups[m]; !ok {
				return errorf(pos, fmt.Sprintf("groups.%s[%d]", name, j), "unknown host %q", m)
			}
			if err := p.inv.addChild(g, p.inv.groups[m], pos); err != nil {
				return errorf(pos, "groups."+name, "group %q includes itself", name)
			}
		}
	}
	return nil
}

func (p *kplayParser) groupVars(n *yaml.Node) error {
	if n == nil {
		return nil
	}
	return eachPair(p.file, "group_vars", n, func(name string, kn, vn *yaml.Node) error {
		g := p.inv.groups[name]
		if g == nil || name == "all" || name == "ungrouped" {
			if name != "all" {
				return errorf(Pos{p.file, kn.Line}, "group_vars."+name, "unknown group %q", name)
			}
			g = p.inv.groups["all"]
		}
		return p.vars(g.Vars, vn, "group_vars."+name, false)
	})
}
