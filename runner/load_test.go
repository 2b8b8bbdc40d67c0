package runner

import (
	"slices"
	"strings"
	"testing"

	"github.com/kplay/kplay/steps"
)

func TestParseInventoryErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // substring of the error, which must name line and key
	}{
		{"unknown key", "hosts:\n  cp1: {address: 1.2.3.4, adress: x}\n", `inv.yaml:2: key "hosts.cp1.adress": unknown key`},
		{"duplicate host", "hosts:\n  cp1: {address: a}\n  cp1: {address: b}\n", `inv.yaml:3: key "hosts.cp1": duplicate key`},
		{"unknown group member", "hosts:\n  cp1: {}\ngroups:\n  cp: [cp1, cp9]\n", `inv.yaml:4: key "groups.cp[1]": unknown host "cp9"`},
		{"bad duration", "defaults:\n  connect_timeout: 10x\nhosts:\n  cp1: {}\n", `inv.yaml:2: key "defaults.connect_timeout"`},
		{"bad port", "hosts:\n  cp1: {port: 70000}\n", `inv.yaml:2: key "ansible_port": bad port "70000" (host cp1)`},
		{"no hosts", "vars: {a: b}\n", `key "hosts": inventory has no hosts`},
		{"bad yaml", "hosts: [\n", `inv.yaml:1: invalid YAML`},
		{"group vars of unknown group", "hosts:\n  cp1: {}\ngroup_vars:\n  nope: {a: 1}\n", `inv.yaml:4: key "group_vars.nope": unknown group`},
		{"non-scalar connection var", "hosts:\n  cp1: {}\nvars:\n  ansible_user: [1]\n", `inv.yaml:4: key "ansible_user": must be a single value (host cp1)`},
		{"ansible unknown group key", "all:\n  hosts:\n    cp1:\n  hostz: {}\n", `inv.yaml:4: key "all.hostz": unknown key`},
		{"ansible bad port", "all:\n  hosts:\n    cp1: {ansible_port: abc}\n", `inv.yaml:3: key "ansible_port": bad port "abc" (host cp1)`},
		{"keepalive interval too short", "defaults:\n  keepalive_interval: 500ms\nhosts:\n  cp1: {}\n", `inv.yaml:2: key "kplay_keepalive_interval": bad keepalive interval "500ms"`},
		{"keepalive interval not a duration", "hosts:\n  cp1: {}\n  cp2:\n    keepalive_interval: soon\n", `inv.yaml:4: key "hosts.cp2.keepalive_interval"`},
		{"keepalive count zero", "hosts:\n  cp1:\n    keepalive_count_max: 0\n", `inv.yaml:3: key "kplay_keepalive_count_max": bad keepalive count "0"`},
		{"keepalive count not a number", "hosts:\n  cp1: {keepalive_count_max: many}\n", `inv.yaml:2: key "kplay_keepalive_count_max": bad keepalive count "many"`},
		{"ansible keepalive count", "all:\n  hosts:\n    cp1: {kplay_keepalive_count_max: -2}\n", `inv.yaml:3: key "kplay_keepalive_count_max": bad keepalive count "-2": want a whole number of at least 1 (host cp1)`},
		{"cyclic group", "hosts:\n  cp1: {}\ngroups:\n  a: [b]\n  b: [a]\n", `includes itself`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInventory("inv.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !IsConfigError(err) {
				t.Errorf("error %v is not a ConfigError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n  %v\nwant substring\n  %s", err, tt.want)
			}
		})
	}
}

func TestParseInventoryKplay(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte(`
defaults:
  user: ops
  port: 2200
  key: ~/.ssh/k
  known_hosts: /kh
  become: true
  connect_timeout: 3s
hosts:
  cp1: {address: 10.0.0.11}
  cp2: {address: 10.0.0.12, port: 22, user: root, become: false, vars: {role: backup}}
  w1: {}
groups:
  control_plane: [cp1, cp2]
  everything: [control_plane, w1]
group_vars:
  control_plane: {tier: cp}
vars: {cluster: prod}
`))
	if err != nil {
		t.Fatal(err)
	}
	cp1, cp2, w1 := inv.Host("cp1"), inv.Host("cp2"), inv.Host("w1")
	if cp1.User != "ops" || cp1.Port != 2200 || !cp1.Become || cp1.Key != "~/.ssh/k" || cp1.KnownHosts != "/kh" || cp1.ConnectTimeout.String() != "3s" {
		t.Errorf("cp1 did not inherit defaults: %+v", cp1)
	}
	if cp2.User != "root" || cp2.Port != 22 || cp2.Become || cp2.Vars["role"] != "backup" {
		t.Errorf("cp2 did not override defaults: %+v", cp2)
	}
	if w1.Address != "w1" {
		t.Errorf("w1 address = %q, want its name", w1.Address)
	}
	if got := strings.Join(slices.Sorted(slices.Values(inv.Groups["everything"])), ","); got != "cp1,cp2,w1" {
		t.Errorf("nested group = %s", got)
	}
	if cp1.Vars["tier"] != "cp" || cp1.Vars["cluster"] != "prod" || w1.Vars["tier"] != "" || w1.Vars["cluster"] != "prod" {
		t.Errorf("vars not merged: cp1 %v, w1 %v", cp1.Vars, w1.Vars)
	}
}

func TestParseInventoryAnsible(t *testing.T) {
	inv, err := ParseInventory("hosts.yml", []byte(`
all:
  vars:
    ansible_user: ubuntu
    cluster: prod
  hosts:
    bastion:
      ansible_host: 10.1.0.1
  children:
    control_plane:
      vars:
        ansible_become: yes
        tier: cp
      hosts:
        cp1:
          ansible_host: 10.1.0.11
          ansible_port: 2222
          ansible_ssh_private_key_file: ~/.ssh/cp
          zone: a
        cp2:
          ansible_host: 10.1.0.12
          ansible_user: admin
    workers:
      hosts:
        w1:
`))
	if err != nil {
		t.Fatal(err)
	}
	cp1, cp2, b, w1 := inv.Host("cp1"), inv.Host("cp2"), inv.Host("bastion"), inv.Host("w1")
	if cp1 == nil || cp2 == nil || b == nil || w1 == nil {
		t.Fatalf("hosts missing: %+v", inv.Hosts)
	}
	if cp1.Address != "10.1.0.11" || cp1.Port != 2222 || cp1.Key != "~/.ssh/cp" || cp1.User != "ubuntu" || !cp1.Become || cp1.Vars["zone"] != "a" {
		t.Errorf("cp1 = %+v", cp1)
	}
	if cp2.User != "admin" {
		t.Errorf("host var must win over group var: cp2.User = %q", cp2.User)
	}
	if b.Become || b.Port != 22 || b.Address != "10.1.0.1" {
		t.Errorf("bastion = %+v", b)
	}
	if got := strings.Join(inv.Groups["control_plane"], ","); got != "cp1,cp2" {
		t.Errorf("control_plane = %s", got)
	}
	if cp1.Vars["cluster"] != "prod" || cp1.Vars["tier"] != "cp" || b.Vars["tier"] != "" {
		t.Errorf("vars: cp1 %v, bastion %v", cp1.Vars, b.Vars)
	}
}

func TestParsePlaybookErrors(t *testing.T) {
	reg := steps.Builtin()
	tests := []struct{ name, yaml, want string }{
		{"unknown top key", "hosts: all\nstepz: []\nsteps: [{shell: x}]\n", `pb.yaml:2: key "stepz": unknown key`},
		{"unknown step type", "hosts: all\nsteps:\n  - name: a\n    shel: x\n", `pb.yaml:4: key "steps[0].shel": unknown step type`},
		{"two types", "hosts: all\nsteps:\n  - shell: x\n    fake: y\n", `unknown step type or key "fake"`},
		{"no type", "hosts: all\nsteps:\n  - name: a\n", `pb.yaml:3: key "steps[0]": step has no type`},
		{"bad timeout", "hosts: all\nsteps:\n  - shell: x\n    timeout: soon\n", `pb.yaml:4: key "steps[0].timeout": bad duration`},
		{"bad retries", "hosts: all\nsteps:\n  - shell: x\n    retries: -1\n", `pb.yaml:4: key "steps[0].retries"`},
		{"bad serial", "hosts: all\nserial: 0%\nsteps: [{shell: x}]\n", `pb.yaml:2: key "serial": bad value`},
		{"bad rollback", "hosts: all\nrollback: some\nsteps: [{shell: x}]\n", `pb.yaml:2: key "rollback": unknown mode`},
		{"no hosts", "steps: [{shell: x}]\n", `key "hosts": is required`},
		{"no steps", "hosts: all\n", `key "steps": play has no steps`},
		{"two docs", "hosts: all\nsteps: [{shell: x}]\n---\nhosts: b\n", `more than one YAML document`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePlaybook("pb.yaml", []byte(tt.yaml), reg)
			if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n  %v\nwant config error containing\n  %s", err, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte("hosts:\n  cp1: {}\n  cp2: {}\ngroups:\n  cp: [cp1, cp2]\nvars:\n  servers: [a, b]\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, pb string
		limit    []string
		want     string
	}{
		{"unknown host in hosts", "hosts: cp, cp3\nsteps: [{shell: x}]\n", nil, `pb.yaml:1: key "hosts": unknown host or group "cp3"`},
		{"unknown limit", "hosts: cp\nsteps: [{shell: x}]\n", []string{"zz"}, `--limit: unknown host or group "zz"`},
		{"unknown variable", "hosts: cp\nsteps:\n  - shell: echo {{ nope }}\n", nil, `pb.yaml:3: key "steps[0].shell.cmd": unknown variable "nope"`},
		{"unknown filter", "hosts: cp\nsteps:\n  - shell: echo {{ a | upper }}\nvars: {a: b}\n", nil, `unknown filter "upper"`},
		{"malformed template", "hosts: cp\nsteps:\n  - shell: echo {{ a \n", nil, `malformed template`},
		{"list variable in a template", "hosts: cp\nsteps:\n  - shell: echo {{ servers }}\n", nil, `pb.yaml:3: key "steps[0].shell.cmd": variable "servers" (inv.yaml:7) is a list or a mapping`},
		{"shell bad key", "hosts: cp\nsteps:\n  - shell: {cmd: x, bogus: 1}\n", nil, `pb.yaml:3: key "steps[0].shell.bogus": unknown key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb, err := ParsePlaybook("pb.yaml", []byte(tt.pb), steps.Builtin())
			if err == nil {
				_, err = Compile(pb, inv, CompileOptions{Limit: tt.limit})
			}
			if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n  %v\nwant config error containing\n  %s", err, tt.want)
			}
		})
	}
}

func TestVarsPrecedenceAndQuoting(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte(`
hosts:
  cp1: {address: 10.0.0.1, vars: {h: host, p: host, g: host}}
groups:
  cp: [cp1]
group_vars:
  cp: {g: group, i: group}
vars: {i: inv, only_inv: inv}
`))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := ParsePlaybook("pb.yaml", []byte("hosts: cp\nvars: {p: play, c: play}\nsteps: [{shell: x}]\n"), steps.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(pb, inv, CompileOptions{Vars: map[string]string{"c": "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	v := plan.Plays[0].Vars["cp1"]
	for name, want := range map[string]string{"c": "cli", "p": "play", "h": "host", "g": "host", "i": "group", "only_inv": "inv", "host.name": "cp1", "host.address": "10.0.0.1"} {
		if got, _ := v.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	quoting := []struct{ val, tmpl, shell, text string }{
		{"plain", "echo {{ x }}", "echo plain", "echo plain"},
		{"a b", "echo {{ x }}", "echo 'a b'", "echo a b"},
		{"$(id)", "echo {{x}}", "echo '$(id)'", "echo $(id)"},
		{"it's", "echo {{ x }}", `echo 'it'\''s'`, "echo it's"},
		{"", "echo {{ x }}", "echo ''", "echo "},
		{"a;b", "echo {{ x | raw }}", "echo a;b", "echo a;b"},
		{"a b", "echo {{ x | quote }}", "echo 'a b'", "echo 'a b'"},
	}
	for _, q := range quoting {
		vv := NewVars(map[string]string{"x": q.val})
		if got, err := vv.Shell(q.tmpl); err != nil || got != q.shell {
			t.Errorf("Shell(%q) with x=%q = %q, %v; want %q", q.tmpl, q.val, got, err, q.shell)
		}
		if got, err := vv.Text(q.tmpl); err != nil || got != q.text {
			t.Errorf("Text(%q) with x=%q = %q, %v; want %q", q.tmpl, q.val, got, err, q.text)
		}
	}
}

func TestSerialBatches(t *testing.T) {
	tests := []struct {
		serial string
		hosts  int
		want   []int
	}{
		{"", 5, []int{5}},
		{"1", 3, []int{1, 1, 1}},
		{"2", 5, []int{2, 2, 1}},
		{"30%", 10, []int{3, 3, 3, 1}},
		{"50%", 3, []int{2, 1}},
		{"1%", 3, []int{1, 1, 1}},
		{"100%", 4, []int{4}},
	}
	for _, tt := range tests {
		var b strings.Builder
		b.WriteString("hosts:\n")
		for i := 0; i < tt.hosts; i++ {
			b.WriteString("  h" + string(rune('a'+i)) + ": {}\n")
		}
		inv, err := ParseInventory("inv.yaml", []byte(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		src := "hosts: all\nsteps: [{shell: x}]\n"
		if tt.serial != "" {
			src = "serial: \"" + tt.serial + "\"\n" + src
		}
		pb, err := ParsePlaybook("pb.yaml", []byte(src), steps.Builtin())
		if err != nil {
			t.Fatal(err)
		}
		plan, err := Compile(pb, inv, CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, batch := range plan.Plays[0].Batches {
			got = append(got, len(batch))
		}
		if strings.Trim(strings.Join(strings.Fields(fmtInts(got)), ","), "[]") != strings.Trim(strings.Join(strings.Fields(fmtInts(tt.want)), ","), "[]") {
			t.Errorf("serial %q on %d hosts: batches %v, want %v", tt.serial, tt.hosts, got, tt.want)
		}
	}
}

func fmtInts(a []int) string {
	var b strings.Builder
	for _, x := range a {
		b.WriteString(" " + string(rune('0'+x)))
	}
	return b.String()
}

// TestQuotedTemplateRejected: a template inside quotes in a shell command is
// refused, naming the line, unless written | raw; quotes elsewhere are fine.
func TestQuotedTemplateRejected(t *testing.T) {
	v := NewVars(map[string]string{"x": "'; touch /tmp/pwned #", "d": "/etc/kubernetes"})
	tests := []struct {
		name, cmd string
		errHas    string // "" means accepted
		want      string // the expansion, when accepted
	}{
		{"bare", "ls {{ x }}", "", `ls ''\''; touch /tmp/pwned #'`},
		{"single quotes", "echo '{{ x }}'", "line 1 of the command: {{ x }} is inside single quotes", ""},
		{"double quotes", `echo "dir: {{ d }}"`, "{{ d }} is inside double quotes", ""},
		{"quote filter inside quotes", `echo "{{ d | quote }}"`, "{{ d | quote }} is inside double quotes", ""},
		{"raw inside quotes", `echo "{{ d | raw }}"`, "", `echo "/etc/kubernetes"`},
		{"after closed quotes", `echo 'a' "b" {{ d }}`, "", `echo 'a' "b" /etc/kubernetes`},
		{"escaped quote", `echo \' {{ d }}`, "", `echo \' /etc/kubernetes`},
		{"double quote inside single", `echo '"' {{ d }}`, "", `echo '"' /etc/kubernetes`},
		{"escaped double quote inside double", `echo "a\"" {{ d }}`, "", `echo "a\"" /etc/kubernetes`},
		{"third line", "set -e\ncd /\nprintf '%s' '{{ x }}'", "line 3 of the command", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Shell(tt.cmd)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("Shell(%q) = %q, %v; want an error with %q", tt.cmd, got, err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Shell(%q) = %q, %v; want %q", tt.cmd, got, err, tt.want)
			}
		})
	}
	// Text (paths, not commands) is not shell: quotes there are literal.
	if got, err := v.Text("'{{ d }}'"); err != nil || got != "'/etc/kubernetes'" {
		t.Errorf("Text: %q, %v", got, err)
	}
}

func TestCompileRefusesOneMachineUnderTwoNames(t *testing.T) {
	tests := []struct{ name, inv, limit, want string }{
		{"same address", "[cp]\ncp1 ansible_host=10.0.0.1\ncp1-alias ansible_host=10.0.0.1\n", "",
			`inv.ini:3: key "cp1-alias": hosts "cp1" (inv.ini:2) and "cp1-alias" (inv.ini:3) are the same machine, 10.0.0.1 port 22`},
		{"name is the other's address", "[cp]\n10.0.0.1\ncp1 ansible_host=10.0.0.1 ansible_port=22\n", "",
			`hosts "10.0.0.1" (inv.ini:2) and "cp1" (inv.ini:3) are the same machine`},
		{"other port", "[cp]\ncp1 ansible_host=10.0.0.1\ncp2 ansible_host=10.0.0.1 ansible_port=2222\n", "", ""},
		{"one of them not targeted", "[cp]\ncp1 ansible_host=10.0.0.1\ncp1-alias ansible_host=10.0.0.1\n", "cp1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := ParseInventory("inv.ini", []byte(tt.inv))
			if err != nil {
				t.Fatal(err)
			}
			pb, err := ParsePlaybook("pb.yaml", []byte("hosts: cp\nsteps: [{shell: x}]\n"), steps.Builtin())
			if err != nil {
				t.Fatal(err)
			}
			var limit []string
			if tt.limit != "" {
				limit = []string{tt.limit}
			}
			_, err = Compile(pb, inv, CompileOptions{Limit: limit})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error\n  %v\nwant config error containing\n  %s", err, tt.want)
			}
		})
	}
}
