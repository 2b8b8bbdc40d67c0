package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInventoryCommand(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yml")
	b := filepath.Join(dir, "b")
	bad := filepath.Join(dir, "bad")
	for p, s := range map[string]string{
		a:   "all:\n  children:\n    cp:\n      hosts:\n        cp[1:2]: {x: 1}\n",
		b:   "[cp]\ncp2 x=2\n[db]\ndb1\n",
		bad: "[cp]\ncp1 x\n",
	} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		args    []string
		code    int
		out     string // substring of stdout
		errText string // substring of stderr
	}{
		{[]string{"--graph", "-i", a, "-i", b}, 0, "@all:\n  |--@ungrouped:\n  |--@cp:\n  |  |--cp1\n  |  |--cp2\n  |--@db:\n  |  |--db1\n", ""},
		{[]string{"-i", a, "-i", b, "--host", "cp2"}, 0, "{\n    \"x\": 2\n}\n", ""},
		{[]string{"-i", b, "-i", a, "--host", "cp2"}, 0, "{\n    \"x\": 1\n}\n", ""},
		{[]string{"-i", a, "--list"}, 0, "\"_meta\": {\n        \"hostvars\": {\n            \"cp1\": {", ""},
		{[]string{"-i", a, "--graph", "cp"}, 0, "@cp:\n  |--cp1\n  |--cp2\n", ""},
		{[]string{"-i", bad, "--list"}, 2, "", bad + ":2: key \"cp1\": want key=value"},
		{[]string{"-i", a, "--host", "nope"}, 2, "", `no host "nope"`},
		{[]string{"-i", a}, 2, "", "want exactly one of --list, --graph or --host"},
		{[]string{"--list"}, 2, "", "-i SOURCE is required"},
		{[]string{"-i", a, "--list", "--graph"}, 2, "", "want exactly one"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := cli(t, append([]string{"inventory"}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.errText) {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nwant %q\nstderr:\n%s\nwant %q", code, tt.code, out, tt.out, errs, tt.errText)
			}
		})
	}
}

// TestRunRefusesUnsupportedVars: validate exits 2 on an ansible_* variable
// kplay would otherwise ignore, naming file, line and key.
func TestRunRefusesUnsupportedVars(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "hosts")
	pb := filepath.Join(dir, "pb.yaml")
	os.WriteFile(inv, []byte("[cp]\ncp1\n\n[cp:vars]\nansible_password=secret\n"), 0o600)
	os.WriteFile(pb, []byte("hosts: cp\nsteps:\n  - shell: 'true'\n"), 0o600)
	code, _, errs := cli(t, "validate", pb, "-i", inv)
	if want := inv + `:5: key "ansible_password": SSH passwords are not supported`; code != 2 || !strings.Contains(errs, want) {
		t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, want)
	}
}
