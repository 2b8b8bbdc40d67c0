package runner

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

// parseAnsible reads an Ansible YAML inventory as it is: groups at the root
// (usually all:), each with hosts, children and vars. The connection
// variables ansible_host, ansible_port, ansible_user,
// ansible_ssh_private_key_file and ansible_become are mapped to kplay's
// settings; other variables stay variables.
func parseAnsible(file string, root *yaml.Node) (*Inventory, error) {
	a := &ansibleLoader{
		file:   file,
		inv:    &Inventory{File: file, Groups: map[string][]string{}, GroupVars: map[string]map[string]string{}, Vars: map[string]string{}},
		byName: map[string]*HostSpec{},
		hvars:  map[string]map[string]string{},
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if _, err := a.group(root.Content[i].Value, root.Content[i+1], root.Content[i].Value); err != nil {
			return nil, err
		}
	}
	if len(a.inv.Hosts) == 0 {
		return nil, &ConfigError{File: file, Line: root.Line, Msg: "Ansible inventory has no hosts"}
	}
	// Connection variables may come from hosts or from any group; resolve
	// them per host with the same precedence as other variables.
	all := make([]string, len(a.inv.Hosts))
	for i, h := range a.inv.Hosts {
		all[i] = h.Name
	}
	a.inv.Groups["all"] = all
	if v, ok := a.inv.GroupVars["all"]; ok {
		a.inv.Vars = v
		delete(a.inv.GroupVars, "all")
	}
	for _, h := range a.inv.Hosts {
		merged := map[string]string{}
		for k, v := range a.inv.Vars {
			merged[k] = v
		}
		for _, g := range a.inv.GroupOrder {
			if !contains(a.inv.Groups[g], h.Name) {
				continue
			}
			for k, v := range a.inv.GroupVars[g] {
				merged[k] = v
			}
		}
		for k, v := range a.hvars[h.Name] {
			merged[k] = v
		}
		if err := a.connVars(h, merged); err != nil {
			return nil, err
		}
		if err := checkHost(file, h, "hosts."+h.Name); err != nil {
			return nil, err
		}
	}
	return a.inv, nil
}

type ansibleLoader struct {
	file   string
	inv    *Inventory
	byName map[string]*HostSpec
	hvars  map[string]map[string]string
}

// group loads one group node and returns its hosts (children included).
func (a *ansibleLoader) group(name string, n *yaml.Node, path string) ([]string, error) {
	if n.Tag == "!!null" {
		a.addGroupOrder(name)
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, &ConfigError{File: a.file, Line: n.Line, Key: path, Msg: "an Ansible group must be a mapping with hosts, children or vars"}
	}
	a.addGroupOrder(name)
	var members []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kp := yamlx.Join(path, k.Value)
		switch k.Value {
		case "hosts":
			if v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return nil, &ConfigError{File: a.file, Line: v.Line, Key: kp, Msg: "must be a mapping of host names"}
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				hn, hv := v.Content[j], v.Content[j+1]
				if err := a.host(hn, hv, yamlx.Join(kp, hn.Value)); err != nil {
					return nil, err
				}
				members = appendUnique(members, hn.Value)
			}
		case "children":
			if v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return nil, &ConfigError{File: a.file, Line: v.Line, Key: kp, Msg: "must be a mapping of group names"}
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				sub, err := a.group(v.Content[j].Value, v.Content[j+1], yamlx.Join(kp, v.Content[j].Value))
				if err != nil {
					return nil, err
				}
				for _, s := range sub {
					members = appendUnique(members, s)
				}
			}
		case "vars":
			var m map[string]yaml.Node
			if err := yamlx.Decode(v, &m, kp); err != nil {
				return nil, configErr(a.file, err)
			}
			vars, err := scalarVars(a.file, kp, m)
			if err != nil {
				return nil, err
			}
			if a.inv.GroupVars[name] == nil {
				a.inv.GroupVars[name] = map[string]string{}
			}
			for key, val := range vars {
				a.inv.GroupVars[name][key] = val
			}
		default:
			return nil, &ConfigError{File: a.file, Line: k.Line, Key: kp, Msg: "unknown key in an Ansible group (known: children, hosts, vars)"}
		}
	}
	for _, m := range members {
		a.inv.Groups[name] = appendUnique(a.inv.Groups[name], m)
	}
	return a.inv.Groups[name], nil
}

func (a *ansibleLoader) addGroupOrder(name string) {
	if !contains(a.inv.GroupOrder, name) {
		a.inv.GroupOrder = append(a.inv.GroupOrder, name)
	}
}

// host records a host; a host may be listed in several groups, with its vars merged.
func (a *ansibleLoader) host(kn, v *yaml.Node, path string) error {
	name := kn.Value
	var m map[string]yaml.Node
	if v.Tag != "!!null" {
		if err := yamlx.Decode(v, &m, path); err != nil {
			return configErr(a.file, err)
		}
	}
	vars, err := scalarVars(a.file, path, m)
	if err != nil {
		return err
	}
	if _, ok := a.byName[name]; !ok {
		h := &HostSpec{Name: name, Line: kn.Line}
		a.byName[name] = h
		a.inv.Hosts = append(a.inv.Hosts, h)
		a.hvars[name] = map[string]string{}
	}
	for k, val := range vars {
		a.hvars[name][k] = val
	}
	return nil
}

// connVars moves ansible_* connection variables into h; the others become h.Vars.
func (a *ansibleLoader) connVars(h *HostSpec, vars map[string]string) error {
	h.Vars = map[string]string{}
	for k, v := range a.hvars[h.Name] {
		if !strings.HasPrefix(k, "ansible_") {
			h.Vars[k] = v
		}
	}
	key := "hosts." + h.Name
	h.Address = h.Name
	for k, v := range vars {
		switch k {
		case "ansible_host", "ansible_ssh_host":
			h.Address = v
		case "ansible_port", "ansible_ssh_port":
			p, err := strconv.Atoi(v)
			if err != nil {
				return &ConfigError{File: a.file, Line: h.Line, Key: key + "." + k, Msg: fmt.Sprintf("bad port %q", v)}
			}
			h.Port = p
		case "ansible_user", "ansible_ssh_user":
			h.User = v
		case "ansible_ssh_private_key_file":
			h.Key = v
		case "ansible_become":
			b, err := parseBool(v)
			if err != nil {
				return &ConfigError{File: a.file, Line: h.Line, Key: key + "." + k, Msg: err.Error()}
			}
			h.Become = b
		case "ansible_ssh_timeout", "ansible_timeout":
			s, err := strconv.Atoi(v)
			if err != nil {
				return &ConfigError{File: a.file, Line: h.Line, Key: key + "." + k, Msg: fmt.Sprintf("bad timeout %q (seconds)", v)}
			}
			h.ConnectTimeout = time.Duration(s) * time.Second
		case "ansible_ssh_known_hosts_file", "kplay_known_hosts":
			h.KnownHosts = v
		}
	}
	// ssh(1) keeps the first -o value it reads: the common args come first.
	for _, k := range []string{"ansible_ssh_extra_args", "ansible_ssh_common_args"} {
		if v, ok := vars[k]; ok {
			pj, err := AnsibleSSHArgs(v)
			if err != nil {
				return &ConfigError{File: a.file, Line: h.Line, Key: key + "." + k, Msg: err.Error()}
			}
			if pj != "" {
				h.ProxyJump = pj
			}
		}
	}
	return nil
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
