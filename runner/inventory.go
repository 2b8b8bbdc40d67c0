package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

// HostSpec is one inventory host with its connection settings resolved.
type HostSpec struct {
	Name           string
	Address        string
	Port           int
	User           string
	Key            string
	KnownHosts     string
	Become         bool
	ConnectTimeout time.Duration
	// ProxyJump is the bastion chain ("user@bastion:22,next"), "none", or
	// "" (then ssh_config's ProxyJump, if any).
	ProxyJump string
	// SSHConfig is the OpenSSH client config file to read; "" means ~/.ssh/config.
	SSHConfig string
	// Defaulted names the connection settings the inventory left unset and
	// kplay filled with its defaults (port, user, known_hosts,
	// connect_timeout): an ssh_config may set these, never the others.
	Defaulted []string
	// Vars are the host's own variables.
	Vars map[string]string
	// Line is where the host is defined.
	Line int
}

// Inventory is a loaded inventory file.
type Inventory struct {
	File string
	// Hosts in file order.
	Hosts []*HostSpec
	// Groups maps a group name to its host names (children expanded), in file order.
	Groups map[string][]string
	// GroupOrder is the order groups were defined in, for var precedence.
	GroupOrder []string
	// GroupVars holds each group's variables.
	GroupVars map[string]map[string]string
	// Vars are inventory-wide variables.
	Vars map[string]string
}

// Host returns the named host.
func (inv *Inventory) Host(name string) *HostSpec {
	for _, h := range inv.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// connSettings are the connection keys shared by defaults and hosts.
type connSettings struct {
	User           string          `yaml:"user"`
	Port           int             `yaml:"port"`
	Key            string          `yaml:"key"`
	KnownHosts     string          `yaml:"known_hosts"`
	Become         *bool           `yaml:"become"`
	ConnectTimeout *yamlx.Duration `yaml:"connect_timeout"`
	ProxyJump      string          `yaml:"proxy_jump"`
	SSHConfig      string          `yaml:"ssh_config"`
}

type invHost struct {
	Address      string `yaml:"address"`
	connSettings `yaml:",inline"`
	Vars         map[string]yaml.Node `yaml:"vars"`
}

type invFile struct {
	Defaults  connSettings                    `yaml:"defaults"`
	Hosts     map[string]invHost              `yaml:"hosts"`
	Groups    map[string][]string             `yaml:"groups"`
	GroupVars map[string]map[string]yaml.Node `yaml:"group_vars"`
	Vars      map[string]yaml.Node            `yaml:"vars"`
}

// LoadInventory reads a kplay or an Ansible YAML inventory.
func LoadInventory(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: fmt.Sprintf("cannot read inventory: %v", unwrapPathErr(err))}
	}
	return ParseInventory(path, data)
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ParseInventory parses inventory YAML; file is used in errors.
func ParseInventory(file string, data []byte) (*Inventory, error) {
	root, err := parseDoc(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, &ConfigError{File: file, Msg: "inventory is empty"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &ConfigError{File: file, Line: root.Line, Msg: "inventory must be a mapping with hosts: (kplay) or all: (Ansible)"}
	}
	if isAnsible(root) {
		return parseAnsible(file, root)
	}
	return parseKplay(file, root)
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

func isAnsible(root *yaml.Node) bool {
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "defaults", "hosts", "groups", "group_vars", "vars":
			return false
		}
	}
	return true
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

func parseKplay(file string, root *yaml.Node) (*Inventory, error) {
	var f invFile
	if err := yamlx.Decode(root, &f, ""); err != nil {
		return nil, configErr(file, err)
	}
	inv := &Inventory{File: file, Groups: map[string][]string{}, GroupVars: map[string]map[string]string{}}
	var err error
	if inv.Vars, err = scalarVars(file, "vars", f.Vars); err != nil {
		return nil, err
	}
	hostsNode := mapValue(root, "hosts")
	if hostsNode == nil || len(f.Hosts) == 0 {
		return nil, &ConfigError{File: file, Line: root.Line, Key: "hosts", Msg: "inventory has no hosts"}
	}
	for i := 0; i+1 < len(hostsNode.Content); i += 2 {
		name := hostsNode.Content[i].Value
		line := hostsNode.Content[i].Line
		h := f.Hosts[name]
		spec := &HostSpec{Name: name, Address: h.Address, Line: line}
		applyConn(spec, f.Defaults)
		applyConn(spec, h.connSettings)
		if spec.Address == "" {
			spec.Address = name
		}
		if spec.Vars, err = scalarVars(file, "hosts."+name+".vars", h.Vars); err != nil {
			return nil, err
		}
		if err := checkHost(file, spec, "hosts."+name); err != nil {
			return nil, err
		}
		inv.Hosts = append(inv.Hosts, spec)
	}
	if g := mapValue(root, "groups"); g != nil {
		for i := 0; i+1 < len(g.Content); i += 2 {
			name, members := g.Content[i].Value, g.Content[i+1]
			if inv.Host(name) != nil {
				return nil, &ConfigError{File: file, Line: g.Content[i].Line, Key: "groups." + name, Msg: "a group cannot have the name of a host"}
			}
			inv.GroupOrder = append(inv.GroupOrder, name)
			for j, m := range f.Groups[name] {
				if inv.Host(m) == nil {
					if _, isGroup := f.Groups[m]; isGroup {
						continue
					}
					return nil, &ConfigError{File: file, Line: members.Content[j].Line, Key: fmt.Sprintf("groups.%s[%d]", name, j), Msg: fmt.Sprintf("unknown host %q", m)}
				}
			}
		}
		// Expand nested groups (a member may name another group).
		for _, name := range inv.GroupOrder {
			hosts, err := expandGroup(f.Groups, inv, name, map[string]bool{})
			if err != nil {
				return nil, &ConfigError{File: file, Line: g.Line, Key: "groups." + name, Msg: err.Error()}
			}
			inv.Groups[name] = hosts
		}
	}
	all := make([]string, len(inv.Hosts))
	for i, h := range inv.Hosts {
		all[i] = h.Name
	}
	inv.Groups["all"] = all
	gv := mapValue(root, "group_vars")
	for name, vars := range f.GroupVars {
		if _, ok := inv.Groups[name]; !ok {
			line := 0
			if gv != nil {
				line = keyLine(gv, name)
			}
			return nil, &ConfigError{File: file, Line: line, Key: "group_vars." + name, Msg: fmt.Sprintf("unknown group %q", name)}
		}
		m := map[string]yaml.Node(vars)
		if inv.GroupVars[name], err = scalarVars(file, "group_vars."+name, m); err != nil {
			return nil, err
		}
	}
	return inv, nil
}

func expandGroup(groups map[string][]string, inv *Inventory, name string, seen map[string]bool) ([]string, error) {
	if seen[name] {
		return nil, fmt.Errorf("group %q includes itself", name)
	}
	seen[name] = true
	var out []string
	for _, m := range groups[name] {
		if inv.Host(m) != nil {
			out = appendUnique(out, m)
			continue
		}
		sub, err := expandGroup(groups, inv, m, seen)
		if err != nil {
			return nil, err
		}
		for _, s := range sub {
			out = appendUnique(out, s)
		}
	}
	delete(seen, name)
	return out, nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func applyConn(h *HostSpec, c connSettings) {
	if c.User != "" {
		h.User = c.User
	}
	if c.Port != 0 {
		h.Port = c.Port
	}
	if c.Key != "" {
		h.Key = c.Key
	}
	if c.KnownHosts != "" {
		h.KnownHosts = c.KnownHosts
	}
	if c.Become != nil {
		h.Become = *c.Become
	}
	if c.ConnectTimeout != nil {
		h.ConnectTimeout = c.ConnectTimeout.D()
	}
	if c.ProxyJump != "" {
		h.ProxyJump = c.ProxyJump
	}
	if c.SSHConfig != "" {
		h.SSHConfig = c.SSHConfig
	}
}

func checkHost(file string, h *HostSpec, key string) error {
	if h.Port < 0 || h.Port > 65535 {
		return &ConfigError{File: file, Line: h.Line, Key: key + ".port", Msg: fmt.Sprintf("port %d out of range", h.Port)}
	}
	if h.Port == 0 {
		h.Port = 22
		h.Defaulted = append(h.Defaulted, "port")
	}
	if h.User == "" {
		h.User = "root"
		h.Defaulted = append(h.Defaulted, "user")
	}
	if h.KnownHosts == "" {
		h.KnownHosts = "~/.ssh/known_hosts"
		h.Defaulted = append(h.Defaulted, "known_hosts")
	}
	if h.ConnectTimeout == 0 {
		h.ConnectTimeout = 10 * time.Second
		h.Defaulted = append(h.Defaulted, "connect_timeout")
	}
	if strings.ContainsAny(h.Address, " \t\n'\"$`;|&") {
		return &ConfigError{File: file, Line: h.Line, Key: key + ".address", Msg: fmt.Sprintf("invalid address %q", h.Address)}
	}
	return nil
}

// mapValue returns the value node of key in mapping n.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func keyLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}
