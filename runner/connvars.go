package runner

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/inventory"
)

// connSetting is one connection setting and the variables that set it,
// in Ansible's order: as in Ansible's ssh connection plugin, the last one
// defined wins, whatever the precedence level it came from.
type connSetting struct {
	names []string
	apply func(h *HostSpec, s string, v inventory.Var) error
}

// connSettings are the connection variables kplay honours.
func connSettings() []connSetting {
	return append(baseConnSettings(), keepaliveSettings()...)
}

// keepaliveSettings are kplay's keepalive variables (keepalive_interval and
// keepalive_count_max in its own inventories).
func keepaliveSettings() []connSetting {
	return []connSetting{
		{[]string{"kplay_keepalive_interval"}, func(h *HostSpec, s string, _ inventory.Var) error {
			d, err := yamlx.ParseDuration(s)
			if err != nil || d < time.Second {
				return fmt.Errorf("bad keepalive interval %q: want a duration of at least 1s, such as 10s", s)
			}
			h.KeepaliveInterval = d
			return nil
		}},
		{[]string{"kplay_keepalive_count_max"}, func(h *HostSpec, s string, _ inventory.Var) error {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return fmt.Errorf("bad keepalive count %q: want a whole number of at least 1", s)
			}
			h.KeepaliveCountMax = n
			return nil
		}},
	}
}

// baseConnSettings are the address, login and transport variables.
func baseConnSettings() []connSetting {
	return []connSetting{
		{[]string{"ansible_host", "ansible_ssh_host"}, func(h *HostSpec, s string, _ inventory.Var) error {
			h.Address = s
			return nil
		}},
		{[]string{"ansible_port", "ansible_ssh_port"}, func(h *HostSpec, s string, _ inventory.Var) error {
			p, err := strconv.Atoi(s)
			if err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("bad port %q", s)
			}
			h.Port = p
			return nil
		}},
		{[]string{"ansible_user", "ansible_ssh_user"}, func(h *HostSpec, s string, _ inventory.Var) error {
			h.User = s
			return nil
		}},
		{[]string{"ansible_private_key_file", "ansible_ssh_private_key_file"}, func(h *HostSpec, s string, _ inventory.Var) error {
			h.Key = s
			return nil
		}},
		{[]string{"ansible_ssh_known_hosts_file", "kplay_known_hosts"}, func(h *HostSpec, s string, _ inventory.Var) error {
			h.KnownHosts = s
			return nil
		}},
		{[]string{"ansible_become"}, func(h *HostSpec, _ string, v inventory.Var) error {
			b, err := ansibleBool(v)
			h.Become = b
			return err
		}},
		{[]string{"ansible_timeout", "ansible_ssh_timeout"}, func(h *HostSpec, s string, _ inventory.Var) error {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return fmt.Errorf("bad timeout %q (seconds)", s)
			}
			h.ConnectTimeout = time.Duration(n) * time.Second
			return nil
		}},
		{[]string{"kplay_connect_timeout"}, func(h *HostSpec, s string, _ inventory.Var) error {
			d, err := yamlx.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("bad duration %q", s)
			}
			h.ConnectTimeout = d
			return nil
		}},
		// ssh(1) keeps the first value of an option: Ansible puts the
		// common args before the extra args, so a ProxyJump in the common
		// args wins; proxy_jump, kplay's own, wins over both.
		{[]string{"ansible_ssh_extra_args"}, proxyJumpFromArgs},
		{[]string{"ansible_ssh_common_args"}, proxyJumpFromArgs},
		{[]string{"kplay_proxy_jump"}, func(h *HostSpec, s string, _ inventory.Var) error {
			h.ProxyJump = s
			return nil
		}},
		{[]string{"kplay_ssh_config"}, func(h *HostSpec, s string, v inventory.Var) error {
			// Relative to the inventory file that set it.
			if s != "" && !filepath.IsAbs(s) && !strings.HasPrefix(s, "~") && v.Pos.File != "" {
				s = filepath.Join(filepath.Dir(v.Pos.File), s)
			}
			h.SSHConfig = s
			return nil
		}},
	}
}

// proxyJumpFromArgs honours -o ProxyJump= and -J in Ansible's ssh args
// (AnsibleSSHArgs refuses every other option by name).
func proxyJumpFromArgs(h *HostSpec, s string, _ inventory.Var) error {
	pj, err := AnsibleSSHArgs(s)
	if err != nil {
		return err
	}
	if pj != "" {
		h.ProxyJump = pj
	}
	return nil
}

// applyConn sets h's connection from its merged variables, and refuses,
// by name, every ansible_* variable kplay does not honour: none is
// silently ignored.
func applyConn(h *HostSpec, vars inventory.Vars) error {
	bad := func(name string, v inventory.Var, msg string) error {
		return &ConfigError{File: v.Pos.File, Line: v.Pos.Line, Key: name, Msg: msg + " (host " + h.Name + ")"}
	}
	honoured := map[string]bool{}
	for _, cs := range connSettings() {
		for _, n := range cs.names {
			honoured[n] = true
		}
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := vars[name]
		s, scalar := v.String()
		if !scalar && (strings.HasPrefix(name, "ansible_") || strings.HasPrefix(name, "kplay_")) {
			return bad(name, v, "must be a single value")
		}
		if msg := refuseVar(name, s); msg != "" && !honoured[name] {
			return bad(name, v, msg)
		}
	}
	for _, cs := range connSettings() {
		chosen := ""
		for _, n := range cs.names {
			if v, ok := vars[n]; ok && v.Value != nil {
				chosen = n
			}
		}
		if chosen == "" {
			continue
		}
		v := vars[chosen]
		s, _ := v.String()
		if err := cs.apply(h, s, v); err != nil {
			return bad(chosen, v, err.Error())
		}
	}
	return nil
}

// refuseVar says why kplay refuses an ansible_* variable with value s, or
// "" when kplay accepts it (it is not ansible_*, or it asks for what kplay
// does anyway).
func refuseVar(name, s string) string {
	switch name {
	case "ansible_connection":
		if s == "ssh" || s == "smart" {
			return ""
		}
		return fmt.Sprintf("kplay connects over SSH only, not %q", s)
	case "ansible_become_user":
		if s == "root" {
			return ""
		}
		return fmt.Sprintf("kplay becomes root only, not %q", s)
	case "ansible_become_method":
		if s == "sudo" {
			return ""
		}
		return fmt.Sprintf("kplay becomes root with sudo only, not %q", s)
	case "ansible_host_key_checking", "ansible_ssh_host_key_checking":
		if b, err := ansibleBool(inventory.Var{Value: s}); err == nil && b {
			return ""
		}
		return "kplay always verifies host keys (--accept-new-host-keys trusts new hosts)"
	case "ansible_python_interpreter", "ansible_group_priority":
		return "" // kplay runs no Python on hosts; group priority is applied by the inventory
	case "ansible_password", "ansible_ssh_pass", "ansible_ssh_password":
		return "SSH passwords are not supported: kplay authenticates with keys (ansible_ssh_private_key_file or the SSH agent)"
	case "ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password":
		return "not read from inventories: set KPLAY_BECOME_PASSWORD in the environment instead"
	case "ansible_ssh_args":
		return "replaces all of Ansible's ssh options, which kplay does not take: use ansible_ssh_common_args with -o ProxyJump= or -J, or proxy_jump"
	}
	if strings.HasPrefix(name, "ansible_") {
		return "not supported by kplay: remove it, or it would be silently ignored"
	}
	return ""
}

// ansibleBool reads a boolean as Ansible's boolean() does.
func ansibleBool(v inventory.Var) (bool, error) {
	if b, ok := v.Value.(bool); ok {
		return b, nil
	}
	s, _ := v.String()
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1", "y", "t":
		return true, nil
	case "false", "no", "off", "0", "n", "f", "":
		return false, nil
	}
	return false, fmt.Errorf("bad boolean %q", s)
}
