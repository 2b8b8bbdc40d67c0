package runner

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

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
	// ProxyJump is the bastion chain ("user@bastion:22,next"), "none", or
	// "" (then ssh_config's ProxyJump, if any).
	ProxyJump string
	// SSHConfig is the OpenSSH client config file to read; "" means ~/.ssh/config.
	SSHConfig string
	// KeepaliveInterval is how often a keepalive is sent, and
	// KeepaliveCountMax how many may go unanswered, with nothing else
	// arriving either, before the connection is given up (OpenSSH's
	// ServerAliveInterval and ServerAliveCountMax); 0 means ssh_config's
	// value, else kplay's default (5s, 3).
	KeepaliveInterval time.Duration
	KeepaliveCountMax int
	// Defaulted names the connection settings the inventory left unset and
	// kplay filled with its defaults (port, user, known_hosts,
	// connect_timeout): an ssh_config may set these, never the others.
	Defaulted []string
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
	return LoadInventoryWith(ConnDefaults{}, sources...)
}

// ConnDefaults are connection settings from the command line (-u,
// --private-key, -b). As in Ansible they are defaults: a host's inventory
// variables win over them.
type ConnDefaults struct {
	User       string
	PrivateKey string
	Become     bool
}

// vars returns the defaults as the ansible_* variables they stand for.
func (d ConnDefaults) vars() map[string]inventory.Var {
	out := map[string]inventory.Var{}
	if d.User != "" {
		out["ansible_user"] = inventory.Var{Value: d.User, Pos: inventory.Pos{File: "-u"}}
	}
	if d.PrivateKey != "" {
		out["ansible_ssh_private_key_file"] = inventory.Var{Value: d.PrivateKey, Pos: inventory.Pos{File: "--private-key"}}
	}
	if d.Become {
		out["ansible_become"] = inventory.Var{Value: true, Pos: inventory.Pos{File: "-b"}}
	}
	return out
}

// LoadInventoryWith is LoadInventory with command-line connection defaults.
func LoadInventoryWith(d ConnDefaults, sources ...string) (*Inventory, error) {
	src, err := inventory.Load(sources...)
	if err != nil {
		return nil, invConfigErr(err)
	}
	return fromInventory(src, d)
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
	return fromInventory(src, ConnDefaults{})
}

func fromInventory(src *inventory.Inventory, d ConnDefaults) (*Inventory, error) {
	defaults := d.vars()
	inv := &Inventory{File: strings.Join(src.Sources, ","), Groups: map[string][]string{}, byName: map[string]*HostSpec{}, src: src}
	for _, h := range src.Hosts() {
		spec := &HostSpec{Name: h.Name, Address: h.Name, File: h.Pos.File, Line: h.Pos.Line,
			Vars: map[string]string{}, Structured: map[string]string{}}
		if err := resolveHost(spec, withConnDefaults(src.HostVars(h), defaults)); err != nil {
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

// withConnDefaults adds each default whose setting vars do not make under
// any of its names.
func withConnDefaults(vars inventory.Vars, defaults map[string]inventory.Var) inventory.Vars {
	for _, cs := range connSettings() {
		for _, n := range cs.names {
			d, ok := defaults[n]
			if !ok || slices.ContainsFunc(cs.names, func(name string) bool { _, set := vars[name]; return set }) {
				continue
			}
			vars[n] = d
		}
	}
	return vars
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
	for _, f := range []struct{ key, what, v string }{{"host", "host name", h.Name}, {"ansible_host", "address", h.Address}, {"ansible_user", "user", h.User}} {
		if i := strings.IndexFunc(f.v, unicode.IsControl); i >= 0 {
			return &ConfigError{File: h.File, Line: h.Line, Key: f.key, Msg: fmt.Sprintf("%s %q holds a control character (%U at byte %d): NUL, CR and other control characters are refused", f.what, f.v, []rune(f.v[i:])[0], i)}
		}
	}
	if h.Address == "" || strings.ContainsAny(h.Address, " \t\n'\"$`;|&") {
		return &ConfigError{File: h.File, Line: h.Line, Key: "ansible_host", Msg: fmt.Sprintf("invalid address %q (host %s)", h.Address, h.Name)}
	}
	return nil
}
