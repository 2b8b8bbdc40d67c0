package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/kplay -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestHelpGolden keeps every command's --help, on stdout, as reviewed.
func TestHelpGolden(t *testing.T) {
	for _, cmd := range []string{"run", "validate", "check", "runs", "inventory", "completion"} {
		code, out, errs := cli(t, cmd, "--help")
		if code != 0 || errs != "" {
			t.Fatalf("%s --help: exit %d, stderr %q", cmd, code, errs)
		}
		goldenFile(t, "help-"+cmd+".golden", out)
	}
	code, out, _ := cli(t, "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	goldenFile(t, "help.golden", out)
}

// writeFixture writes an inventory and a tagged playbook for the CLI tests.
func writeFixture(t *testing.T) (inv, pb, dir string) {
	t.Helper()
	dir = t.TempDir()
	inv = filepath.Join(dir, "hosts.ini")
	pb = filepath.Join(dir, "pb.yaml")
	os.WriteFile(inv, []byte("[cp]\ncp1 ansible_host=192.0.2.1\ncp2 ansible_host=192.0.2.2\ncp10 ansible_host=192.0.2.10\n[web]\nweb1 ansible_host=192.0.2.20\n"), 0o600)
	os.WriteFile(pb, []byte(`- name: renew
  hosts: all
  steps:
    - name: check
      shell: echo {{ x }}
      tags: check
    - name: renew
      shell: echo renew
      tags: [renew]
- name: restart
  hosts: cp
  serial: 1
  steps:
    - name: restart
      shell: echo restart
      tags: restart
`), 0o600)
	return inv, pb, dir
}

// TestListHostsAndSteps: --list-hosts and --list-steps print the plan and
// exit 0; the inventory's addresses (TEST-NET, unreachable) are never
// contacted, or the run would fail.
func TestListHostsAndSteps(t *testing.T) {
	inv, pb, _ := writeFixture(t)
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"list-hosts.golden", []string{"run", pb, "-i", inv, "-e", "x=1", "--list-hosts", "-l", "cp*:!cp10"}},
		{"list-steps.golden", []string{"run", pb, "-i", inv, "-e", "x=1", "--list-steps", "--skip-tags", "renew"}},
		{"list-both.golden", []string{"validate", pb, "-i", inv, "-e", "x=1", "--list-hosts", "--list-steps", "--start-at-step", "renew", "-l", "web1"}},
	} {
		code, out, errs := cli(t, tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", tc.args, code, errs)
		}
		goldenFile(t, tc.golden, strings.ReplaceAll(out, pb, "PLAYBOOK"))
	}
}

func TestShortFlagsAndExtraVars(t *testing.T) {
	inv, pb, dir := writeFixture(t)
	vars := filepath.Join(dir, "vars.yaml")
	os.WriteFile(vars, []byte("x: 1\ny: [a]\n"), 0o600)
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"x": "from file"}`), 0o600)
	limits := filepath.Join(dir, "limits")
	os.WriteFile(limits, []byte("cp1\nweb*\n"), 0o600)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"validate", pb, "-i", inv, "-e", "x=1"}, 0, "on 4 host(s)"},
		{[]string{"validate", pb, "-i", inv, "-e", "@" + good, "-l", "@" + limits}, 0, "on 2 host(s)"},
		{[]string{"validate", pb, "-i", inv, "-e", `{"x": 1}`, "-l", "cp:&cp1"}, 0, "on 1 host(s)"},
		{[]string{"validate", pb, "-i", inv, "-e", "x=1 y=2", "-Cvvv", "-f", "2", "-bu", "admin"}, 0, "on 4 host(s)"},
		{[]string{"validate", pb, "-i", inv, "-e", "@" + vars}, 2, `vars.yaml: line 2: key "y": a list or a mapping`},
		{[]string{"validate", pb, "-i", inv, "-e", `x="a b"`}, 2, "quotes in key=value are not supported"},
		{[]string{"validate", pb, "-i", inv, "-e", "@" + filepath.Join(dir, "nope")}, 2, "no such file"},
		{[]string{"validate", pb, "-i", inv, "-e", "x=1", "-l", "nope*"}, 2, `unknown host or group "nope*"`},
		{[]string{"validate", pb, "-i", inv, "-e", "x=1", "-t", "renw"}, 2, `--tags: no step of`},
		{[]string{"validate", pb, "-i", inv, "-e", "x=1", "-Z"}, 2, "unknown shorthand flag: 'Z' in -Z"},
		{[]string{"validate", pb, "-i", inv, "-e", "x=1", "--dry-rn"}, 2, "unknown flag: --dry-rn"},
		{[]string{"run", pb, "-i", inv, "-e", "x=1", "-K"}, 2, "-K (--ask-become-pass) needs a terminal"},
	}
	for _, tt := range tests {
		code, out, errs := cli(t, tt.args...)
		if code != tt.code || !strings.Contains(out+errs, tt.want) {
			t.Errorf("kplay %v: exit %d, output %q; want %d and %q", tt.args, code, out+errs, tt.code, tt.want)
		}
	}
}

// TestConnDefaults: -u, --private-key and -b apply where the inventory
// sets nothing, and lose to the inventory's variables, as in Ansible.
func TestConnDefaults(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "hosts.ini")
	os.WriteFile(inv, []byte("a\nb ansible_user=bob ansible_become=false ansible_ssh_private_key_file=/k/b\n"), 0o600)
	pb := filepath.Join(dir, "pb.yaml")
	os.WriteFile(pb, []byte("hosts: all\nsteps: [{shell: x}]\n"), 0o600)
	f, err := parseFlags("run", []string{pb, "-i", inv, "-u", "alice", "--private-key", "/k/a", "-b"}, &bytes.Buffer{}, &bytes.Buffer{}, true, false)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := load(pb, f)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, h := range plan.Hosts {
		got += h.Name + ":" + h.User + "," + h.Key + "," + map[bool]string{true: "become", false: "-"}[h.Become] + " "
	}
	if want := "a:alice,/k/a,become b:bob,/k/b,- "; got != want {
		t.Errorf("hosts %q, want %q", got, want)
	}
}

// TestCompletionScripts: each script is valid in its shell where the
// shell is installed, and names every command's flags.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errs := cli(t, "completion", sh)
		if code != 0 {
			t.Fatalf("completion %s: exit %d %s", sh, code, errs)
		}
		for _, want := range []string{"--limit", "--list-steps", "--skip-tags", "--within", "--graph"} {
			if !strings.Contains(out, strings.TrimPrefix(want, map[bool]string{true: "--", false: ""}[sh == "fish"])) {
				t.Errorf("completion %s lacks %s", sh, want)
			}
		}
		bin, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("SKIP syntax check: %s not installed", sh)
			continue
		}
		script := filepath.Join(t.TempDir(), "kplay."+sh)
		os.WriteFile(script, []byte(out), 0o600)
		if b, err := exec.Command(bin, "-n", script).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, b)
		}
	}
	if code, _, errs := cli(t, "completion", "tcsh"); code != 2 || !strings.Contains(errs, `unknown shell "tcsh"`) {
		t.Errorf("completion tcsh: exit %d %q", code, errs)
	}
}
