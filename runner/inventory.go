package runner

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kplay/kplay/inventory"
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
	// Vars are the host's inventory variables that are single values,
	// merged with Ansible's precedence, as written.
	Vars map[string]string
	// Structured names the host's variables that are lists or mappings,
	// with where each was set: templates cannot use them.
	Structured map[string]string
	// File and Line are where the host is defined.
	File string
	Line int
}

// Inventory is a loaded inventory with every host's connection resolved.
type Inventory struct {
	// File names the inventory sources, comma-separated.
	File string
	// Hosts in inventory order.
	Hosts []*HostSpec
	// Groups maps each group to its hosts (descendants included).
	Groups map[string][]string

	byName map[string]*HostSpec
	// src is the inventory as read, for host patterns.
	src *inventory.Inventory
}

// Host returns the named host, or nil.
func (inv *Inventory) Host(name string) *HostSpec { return inv.byName[name] }

// LoadInventory reads inventory sources (kplay or Ansible: YAML or INI
// files, directories, host lists), merged in order, and resolves each
// host's connection from its variables.
func LoadInventory(sources ...string) (*Inventory, error) {
	src, err := inventory.Load(sources...)
	if err != nil {
		return nil, invConfigErr(err)
	}
	return FromInventory(src)
}

// ParseInventory parses one inventory file's content; file is used in errors.
func ParseInventory(file string, data []byte) (*Inventory, error) {
	src, err := inventory.Parse(file, data)
	if err != nil {
		return nil, invConfigErr(err)
	}
	return FromInventory(src)
}

// invConfigErr turns an inventory error into a *ConfigError (exit 2).
func invConfigErr(err error) error {
	var ie *inventory.Error
	if errors.As(err, &ie) {
		msg := ie.Msg
		if ie.Err != nil {
			msg += ": " + ie.Err.Error()
		}
		return &ConfigError{File: ie.Pos.File, Line: ie.Pos.Line, Key: ie.Key, Msg: msg}
	}
	return &ConfigError{Msg: err.Error()}
}

// FromInventory resolves every host of src: its variables, merged as
// Ansible merges them, and its connection settings from the ansible_*
// variables kplay honours. Any other ansible_* variable is an error.
func FromInventory(src *inventory.Inventory) (*Inventory, error) {
	inv := &Inventory{File: strings.Join(src.Sources, ","), Groups: map[string][]string{}, byName: map[string]*HostSpec{}, src: src}
	for _, h := range src.Hosts() {
		spec := &HostSpec{Name: h.Name, Address: h.Name, File: h.Pos.File, Line: h.Pos.Line,
			Vars: map[string]string{}, Structured: map[string]string{}}
		if err := resolveHost(spec, src.HostVars(h)); err != nil {
			return nil, err
		}
		inv.Hosts = append(inv.Hosts, spec)
		inv.byName[h.Name] = spec
	}
	if len(inv.Hosts) == 0 {
		return nil, &ConfigError{File: inv.File, Msg: "inventory has no hosts"}
	}
	for _, g := range src.Groups() {
		hosts := src.HostsOf(g)
		names := make([]string, len(hosts))
		for i, h := range hosts {
			names[i] = h.Name
		}
		inv.Groups[g.Name] = names
	}
	return inv, nil
}

// resolveHost fills h from its merged variables.
func resolveHost(h *HostSpec, vars inventory.Vars) error {
	for name, v := range vars {
		if s, ok := v.String(); ok {
			h.Vars[name] = s
		} else {
			h.Structured[name] = v.Pos.String()
		}
	}
	if err := applyConn(h, vars); err != nil {
		return err
	}
	return checkHost(h)
}

func checkHost(h *HostSpec) error {
	if h.Port == 0 {
		h.Port = 22
	}
	if h.User == "" {
		h.User = "root"
	}
	if h.KnownHosts == "" {
		h.KnownHosts = "~/.ssh/known_hosts"
	}
	if h.ConnectTimeout == 0 {
		h.ConnectTimeout = 10 * time.Second
	}
	if h.Address == "" || strings.ContainsAny(h.Address, " \t\n'\"$`;|&") {
		return &ConfigError{File: h.File, Line: h.Line, Key: "ansible_host", Msg: fmt.Sprintf("invalid address %q (host %s)", h.Address, h.Name)}
	}
	return nil
}
