package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestExpandHostPattern(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
		port    int
		err     string
	}{
		{"cp1", []string{"cp1"}, 0, ""},
		{"cp[1:3]", []string{"cp1", "cp2", "cp3"}, 0, ""},
		{"cp[01:10:3]", []string{"cp01", "cp04", "cp07", "cp10"}, 0, ""},
		{"web[a:c].example.com", []string{"weba.example.com", "webb.example.com", "webc.example.com"}, 0, ""},
		{"n[1:2]-[a:b]", []string{"n1-a", "n1-b", "n2-a", "n2-b"}, 0, ""},
		{"n[:2]", []string{"n0", "n1", "n2"}, 0, ""},
		{"cp[1:2]:2222", []string{"cp1", "cp2"}, 2222, ""},
		{"10.0.0.1:22", []string{"10.0.0.1"}, 22, ""},
		{"10.0.0.[1:2]", []string{"10.0.0.1", "10.0.0.2"}, 0, ""},
		{"[::1]:2200", []string{"::1"}, 2200, ""},
		{"fe80::1", []string{"fe80::1"}, 0, ""},
		{"cp[01:9]", nil, 0, "equal-length"},
		{"cp[c:a]", nil, 0, "begin <= end"},
		{"cp[1:]", nil, 0, "end value"},
		{"cp[1:2:3:4]", nil, 0, "begin:end or begin:end:step"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			got, port, err := expandHostPattern(tt.pattern, true)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) || port != tt.port {
				t.Fatalf("= %v, %d, %v; want %v, %d", got, port, err, tt.want, tt.port)
			}
		})
	}
}

func TestPyLiteral(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"42", int64(42)}, {"-3", int64(-3)}, {"0x1f", int64(31)}, {"1_000", int64(1000)},
		{"010", "010"}, {"1.5", 1.5}, {"1e3", 1000.0}, {"True", true}, {"False", false}, {"None", nil},
		{"yes", "yes"}, {"'a b'", "a b"}, {`"x\ty"`, "x\ty"}, {"'a' 'b'", "ab"},
		{"[1, 'two']", []any{int64(1), "two"}}, {"(1,)", []any{int64(1)}}, {"(1)", int64(1)}, {"1, 2", []any{int64(1), int64(2)}},
		{"{'k': 1}", map[string]any{"k": int64(1)}}, {"{1, 2}", "{1, 2}"}, {"1.2.3", "1.2.3"}, {"a=b", "a=b"}, {"", ""},
	}
	for _, tt := range tests {
		if got := pyLiteral(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("pyLiteral(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestShlexSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"h a=1 b=2", []string{"h", "a=1", "b=2"}},
		{`h a="x y" b='p q'`, []string{"h", "a=x y", "b=p q"}},
		{"h a=1 # comment", []string{"h", "a=1"}},
		{"h a=1#comment", []string{"h", "a=1"}},
		{`h a="#not comment"`, []string{"h", "a=#not comment"}},
		{`h a=x\ y`, []string{"h", "a=x y"}},
		{`h a="q\"uote"`, []string{"h", `a=q"uote`}},
	}
	for _, tt := range tests {
		if got, err := shlexSplit(tt.in); err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("shlexSplit(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := shlexSplit(`h a="open`); err == nil {
		t.Error("unclosed quote: no error")
	}
}

// TestParseErrors: bad input names the file, the line and the key.
func TestParseErrors(t *testing.T) {
	tests := []struct{ file, data, want string }{
		{"h.yml", "all:\n  hosts:\n    cp1:\n  hostz: {}\n", `h.yml:4: key "all.hostz": unknown key in a group`},
		{"h.yml", "all:\n  hosts:\n    cp1:\n    cp1:\n", `h.yml:4: key "all.hosts.cp1": duplicate key`},
		{"h.yml", "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n", `h.yml:5: key "b": adding group "b" as a child of "a" creates a loop`},
		{"h.yml", "all:\n  hosts:\n    cp[1:x]:\n", `h.yml:3: key "all.hosts.cp[1:x]": bad host pattern`},
		{"h.yml", "all:\n  hosts:\n    1:\n", `h.yml:3: key "all.hosts.1": host pattern 1 must be a string`},
		{"h.yml", "all:\n  vars:\n    x: !vault |\n      abc\n", `h.yml:3: key "all.vars.x": Ansible Vault values are not supported`},
		{"h.yml", "plugin: aws_ec2\n", `h.yml:1: key "plugin": inventory plugins are not supported`},
		{"h.yml", "all: [1]\n", `h.yml:1: key "all": a group must be a mapping`},
		{"h.yml", "all:\n  hosts: [\n", `h.yml:2: invalid YAML`},
		{"hosts", "all:\n  hosts: [\n", `hosts:1: key "all:": bad host: invalid host pattern "all:"`},
		{"hosts", "[cp]\ncp1 novalue\n", `hosts:2: key "cp1": want key=value`},
		{"hosts", "[cp:bogus]\n", `hosts:1: key "[cp:bogus]": section [cp:bogus] has unknown type "bogus"`},
		{"hosts", "[a:children]\nb\n", `hosts:2: key "[a:children]": section [a:children] names an undefined group: b`},
		{"hosts", "[a:vars]\nx=1\n", `hosts:1: key "[a:vars]": section [a:vars] is for an undefined group: a`},
		{"hosts", "[a b]\n", `hosts:1: invalid section [a b]`},
		{"hosts", "[g]\nh:\n", `hosts:2: key "h:": bad host: invalid host pattern "h:"`},
		{"hosts", "[g]\nh[3:1]\n", `hosts:2: key "h[3:1]": bad host: host range in "h[3:1]": range [3:1] is empty`},
		{"hosts", "[g:vars]\n", `hosts:1: key "[g:vars]"`},
		{"inv", "#!/bin/sh\necho {}\n", `inv:1: inventory scripts are not supported`},
		{"inv.toml", "[all]\n", `inv.toml: TOML inventories are not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := Parse(tt.file, []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n  %v\nwant\n  %s", err, tt.want)
			}
		})
	}
}

func TestIgnored(t *testing.T) {
	for name, want := range map[string]bool{
		"hosts": false, "hosts.yml": false, "hosts.ini": true, "a.bak": true, "a~": true, "a.orig": true,
		"README.md": true, "x.txt": true, ".git": true, "group_vars": true, "host_vars": true, "a.cfg": true, "a.retry": true,
		"a.swp": true, "a.pyc": true, "a.rst": true, "a.rpm": true, "a.json": false,
	} {
		if got := Ignored(name); got != want {
			t.Errorf("Ignored(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestVarFileErrors: a bad group_vars or host_vars file names itself.
func TestVarFileErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "group_vars"), 0o755); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "hosts")
	bad := filepath.Join(dir, "group_vars", "all.yml")
	for _, f := range [][2]string{{inv, "h1\n"}, {bad, "a: 1\nb: [\n"}} {
		if err := os.WriteFile(f[0], []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(inv); err == nil || !strings.Contains(err.Error(), bad+":") {
		t.Errorf("err = %v, want one naming %s with a line", err, bad)
	}
	if err := os.WriteFile(bad, []byte("- a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(inv); err == nil || !strings.Contains(err.Error(), bad+":1: a vars file must be a mapping") {
		t.Errorf("err = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing: cannot read inventory") {
		t.Errorf("missing source: %v", err)
	}
}

// bigInventory writes an INI inventory of n hosts in 10 groups, with a
// host_vars file for every 100th host.
func bigInventory(b testing.TB, n int) string {
	dir := b.TempDir()
	var sb strings.Builder
	for g := 0; g < 10; g++ {
		fmt.Fprintf(&sb, "[g%d]\n", g)
		for i := g; i < n; i += 10 {
			fmt.Fprintf(&sb, "h%05d ansible_host=10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
		}
		fmt.Fprintf(&sb, "[g%d:vars]\nv=%d\n", g, g)
	}
	if err := os.MkdirAll(filepath.Join(dir, "host_vars"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 100 {
		if err := os.WriteFile(filepath.Join(dir, "host_vars", fmt.Sprintf("h%05d.yml", i)), []byte("x: 1\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	p := filepath.Join(dir, "hosts")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkLoad20000 loads a 20,000-host inventory and resolves every
// host's variables.
func BenchmarkLoad20000(b *testing.B) {
	p := bigInventory(b, 20000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		inv, err := Load(p)
		if err != nil {
			b.Fatal(err)
		}
		for _, h := range inv.Hosts() {
			inv.HostVars(h)
		}
	}
}

// TestLoadLinear: loading 20,000 hosts takes less than 8 times as long as
// 2,000 (quadratic would be 100 times).
func TestLoadLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: timing test")
	}
	timeOf := func(n int) float64 {
		p := bigInventory(t, n)
		r := testing.Benchmark(func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				inv, err := Load(p)
				if err != nil {
					b.Fatal(err)
				}
				for _, h := range inv.Hosts() {
					inv.HostVars(h)
				}
			}
		})
		return float64(r.NsPerOp())
	}
	small, big := timeOf(2000), timeOf(20000)
	if big > 30*small {
		t.Errorf("20,000 hosts took %.0fx as long as 2,000: loading is not linear", big/small)
	}
}
