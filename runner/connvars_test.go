package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConnVarsRefused: every ansible_* variable kplay does not honour is
// refused by name, with the file and line where it was set.
func TestConnVarsRefused(t *testing.T) {
	tests := []struct{ ini, want string }{
		{"h1 ansible_password=secret", `hosts:1: key "ansible_password": SSH passwords are not supported`},
		{"h1 ansible_ssh_pass=secret", `hosts:1: key "ansible_ssh_pass": SSH passwords`},
		{"h1 ansible_become_password=x", `hosts:1: key "ansible_become_password": not read from inventories: set KPLAY_BECOME_PASSWORD`},
		{"h1 ansible_connection=local", `hosts:1: key "ansible_connection": kplay connects over SSH only, not "local"`},
		{"h1 ansible_become_user=postgres", `hosts:1: key "ansible_become_user": kplay becomes root only, not "postgres"`},
		{"h1 ansible_become_method=su", `hosts:1: key "ansible_become_method": kplay becomes root with sudo only`},
		{"h1 ansible_ssh_common_args='-o ProxyJump=bastion -o ForwardAgent=yes'", `hosts:1: key "ansible_ssh_common_args": `},
		{"h1 ansible_ssh_args=-v", `key "ansible_ssh_args": replaces all of Ansible's ssh options`},
		{"h1 ansible_host_key_checking=false", `key "ansible_host_key_checking": kplay always verifies host keys`},
		{"h1 ansible_shell_type=csh", `hosts:1: key "ansible_shell_type": not supported by kplay`},
		{"h1\n[all:vars]\nansible_password=x", `hosts:3: key "ansible_password"`},
		{"h1 ansible_port=0", `key "ansible_port": bad port "0"`},
		{"h1 ansible_become=maybe", `key "ansible_become": bad boolean "maybe"`},
		{"h1 ansible_timeout=soon", `key "ansible_timeout": bad timeout "soon"`},
		{"h1 ansible_host='a;b'", `key "ansible_host": invalid address "a;b"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := ParseInventory("hosts", []byte(tt.ini+"\n"))
			if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n  %v\nwant config error containing\n  %s", err, tt.want)
			}
		})
	}
}

// TestConnVarsHonoured: the variables kplay honours set the connection,
// with Ansible's precedence; accepted no-op values are not errors.
func TestConnVarsHonoured(t *testing.T) {
	inv, err := ParseInventory("hosts", []byte(`h1 ansible_host=10.0.0.1 ansible_port=2222 ansible_user=ops ansible_ssh_private_key_file=~/.ssh/k ansible_become=yes ansible_timeout=3
h2 ansible_ssh_host=10.0.0.2 ansible_ssh_port=2200 ansible_ssh_user=adm ansible_connection=ssh ansible_become_user=root ansible_become_method=sudo ansible_python_interpreter=/usr/bin/python3
h3:2300 kplay_known_hosts=/kh

[g]
h2

[g:vars]
ansible_user=group_user
ansible_become=true

[all:vars]
ansible_user=all_user
`))
	if err != nil {
		t.Fatal(err)
	}
	h1, h2, h3 := inv.Host("h1"), inv.Host("h2"), inv.Host("h3")
	if h1.Address != "10.0.0.1" || h1.Port != 2222 || h1.User != "ops" || h1.Key != "~/.ssh/k" || !h1.Become || h1.ConnectTimeout != 3*time.Second {
		t.Errorf("h1 = %+v", h1)
	}
	if h2.Address != "10.0.0.2" || h2.Port != 2200 || h2.User != "adm" || !h2.Become {
		t.Errorf("h2 = %+v (host vars must win over group vars)", h2)
	}
	if h3.Address != "h3" || h3.Port != 2300 || h3.User != "all_user" || h3.Become || h3.KnownHosts != "/kh" {
		t.Errorf("h3 = %+v", h3)
	}
}

// TestLoadInventorySources: several sources merge in order, with the
// group_vars and host_vars beside each.
func TestLoadInventorySources(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a/hosts.yml", "all:\n  children:\n    control_plane:\n      hosts:\n        cp[1:2]:\n")
	b := write("b/hosts", "[control_plane]\ncp2 ansible_port=2202\ncp3\n")
	write("a/group_vars/control_plane.yml", "ansible_user: admin\n")
	write("b/host_vars/cp3/main.yml", "ansible_host: 10.0.0.3\n")
	inv, err := LoadInventory(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(inv.Groups["control_plane"], ","); got != "cp1,cp2,cp3" {
		t.Errorf("control_plane = %s", got)
	}
	if cp2, cp3 := inv.Host("cp2"), inv.Host("cp3"); cp2.Port != 2202 || cp2.User != "admin" || cp3.Address != "10.0.0.3" || cp3.User != "admin" {
		t.Errorf("cp2 = %+v, cp3 = %+v", cp2, cp3)
	}
	if _, err := LoadInventory(write("c/hosts", "[g\n")); err == nil || !strings.Contains(err.Error(), "c/hosts:1") {
		t.Errorf("bad INI: %v, want an error at c/hosts:1", err)
	}
}

// TestControlCharactersRefused (issue 15, item 8): NUL, CR and other control
// characters in host names, addresses and users are refused at validation,
// naming the file, line and key.
func TestControlCharactersRefused(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"CR in a host name", "all:\n  hosts:\n    \"cp1\\r\":\n      ansible_host: 10.0.0.1\n", `key "host": host name "cp1\r" holds a control character (U+000D at byte 3)`},
		{"NUL in an address", "all:\n  hosts:\n    cp1:\n      ansible_host: \"10.0.0.1\\0\"\n", `key "ansible_host": address "10.0.0.1\x00" holds a control character (U+0000`},
		{"escape in a user", "all:\n  hosts:\n    cp1:\n      ansible_user: \"ro\\eot\"\n", `key "ansible_user": user "ro\x1bot" holds a control character`},
		{"DEL in a host name", "all:\n  hosts:\n    \"cp\\x7f\":\n", `host name "cp\x7f" holds a control character`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInventory("hosts.yaml", []byte(tt.yaml))
			if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "hosts.yaml:") {
				t.Fatalf("error\n  %v\nwant a config error at hosts.yaml:LINE containing\n  %s", err, tt.want)
			}
		})
	}
}

// TestProxyJumpVars: Ansible's ssh args give ProxyJump (-o ProxyJump= or
// -J; the common args win, as ssh keeps the first value), kplay's
// proxy_jump wins over both, and a relative ssh_config is relative to the
// inventory file that names it.
func TestProxyJumpVars(t *testing.T) {
	inv, err := ParseInventory("/srv/inv/hosts", []byte(`h1 ansible_ssh_common_args='-o ProxyJump=ops@bastion:2222'
h2 ansible_ssh_extra_args='-J jump1,jump2'
h3 ansible_ssh_extra_args='-J extra' ansible_ssh_common_args='-o ProxyJump=common'
h4
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"h1": "ops@bastion:2222", "h2": "jump1,jump2", "h3": "common", "h4": ""} {
		if got := inv.Host(name).ProxyJump; got != want {
			t.Errorf("%s: ProxyJump %q, want %q", name, got, want)
		}
	}
	k, err := ParseInventory("/srv/inv/kplay.yaml", []byte("defaults: {ssh_config: ssh/config, proxy_jump: b1}\nhosts:\n  cp1: {address: 10.0.0.1, proxy_jump: none}\n  cp2: {address: 10.0.0.2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h := k.Host("cp1"); h.ProxyJump != "none" || h.SSHConfig != "/srv/inv/ssh/config" {
		t.Errorf("cp1: proxy_jump %q ssh_config %q", h.ProxyJump, h.SSHConfig)
	}
	if h := k.Host("cp2"); h.ProxyJump != "b1" {
		t.Errorf("cp2: proxy_jump %q, want the default b1", h.ProxyJump)
	}
	if h := k.Host("cp2"); len(h.Defaulted) != 4 {
		t.Errorf("cp2: defaulted %v, want port, user, known_hosts and connect_timeout", h.Defaulted)
	}
}
