package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runCLI(context.Background(), context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestShippedFilesValidate keeps the shipped playbooks and inventories valid.
func TestShippedFilesValidate(t *testing.T) {
	pbs, _ := filepath.Glob("../../playbooks/*.yaml")
	invs, _ := filepath.Glob("../../inventories/*.yaml")
	if len(pbs) < 3 || len(invs) < 2 {
		t.Fatalf("shipped files missing: %v %v", pbs, invs)
	}
	for _, pb := range pbs {
		for _, inv := range invs {
			if code, out, errs := cli(t, "validate", pb, "-i", inv); code != 0 || !strings.Contains(out, "no host was contacted") {
				t.Errorf("validate %s -i %s: exit %d\n%s%s", pb, inv, code, out, errs)
			}
		}
	}
}

func TestCLIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	pb := filepath.Join(dir, "pb.yaml")
	os.WriteFile(inv, []byte("hosts:\n  h1: {address: 192.0.2.250}\n"), 0o600)
	os.WriteFile(pb, []byte("hosts: all\nsteps:\n  - shell: echo {{ x }}\n"), 0o600)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "Usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"run", pb}, 2, "-i INVENTORY is required"},
		{[]string{"run", "-i", inv}, 2, "want exactly one PLAYBOOK"},
		{[]string{"run", pb, "-i", inv, "--output", "yaml"}, 2, "--output must be text or json"},
		{[]string{"run", pb, "-i", inv, "--timeout", "soon"}, 2, `invalid argument "soon" for "--timeout" flag`},
		{[]string{"run", pb, "-i", inv, "--var", "novalue"}, 2, "want key=value"},
		{[]string{"run", pb, "-i", inv}, 2, `unknown variable "x"`},
		{[]string{"run", pb, "-i", filepath.Join(dir, "nope.yaml"), "--var", "x=1"}, 2, "cannot read inventory"},
		{[]string{"check", pb, "-i", inv}, 2, "unexpected argument"},
		{[]string{"check", "-i", inv}, 2, "no control_plane group"},
		{[]string{"check", "-i", inv, "--within", "x"}, 2, `invalid argument "x" for "--within" flag`},
		{[]string{"check", "-i", inv, "--output", "xml"}, 2, `--output must be text, json, junit or prometheus, not "xml"`},
		{[]string{"run", pb, "-i", inv, "--output", "junit"}, 2, "--output must be text or json"},
		{[]string{"check", "-i", inv, "--output-file", filepath.Join(dir, "r.xml")}, 2, "needs --output json, junit or prometheus"},
		{[]string{"check", "-i", inv, "--output", "junit", "--output-file", filepath.Join(dir, "nope", "r.xml")}, 2, "no such file or directory"},
		{[]string{"check", "-i", inv, "--output", "junit", "--output-file", dir}, 2, "is a directory"},
		{[]string{"run", pb, "-i", inv, "--output-file", "x"}, 2, "unknown flag: --output-file"},
	}
	for _, tt := range tests {
		code, out, errs := cli(t, tt.args...)
		if code != tt.code || !strings.Contains(out+errs, tt.want) {
			t.Errorf("kplay %v: exit %d, output %q; want %d and %q", tt.args, code, out+errs, tt.code, tt.want)
		}
	}
}

func TestFlagsAfterPlaybook(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	pb := filepath.Join(dir, "pb.yaml")
	os.WriteFile(inv, []byte("hosts:\n  h1: {}\n  h2: {}\ngroups:\n  g: [h2]\n"), 0o600)
	os.WriteFile(pb, []byte("hosts: all\nsteps:\n  - shell: echo {{ x }}\n"), 0o600)
	for _, args := range [][]string{
		{"validate", pb, "-i", inv, "--var", "x=1", "--limit", "g"},
		{"validate", "--var", "x=1", "-i", inv, pb, "--limit=g"},
		{"validate", "-i", inv, "--limit", "h2", "--var=x=1", pb},
	} {
		code, out, errs := cli(t, args...)
		if code != 0 || !strings.Contains(out, "on 1 host(s)") {
			t.Errorf("kplay %v: exit %d %q %q", args, code, out, errs)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := cli(t, "version"); code != 0 || !strings.HasPrefix(out, "kplay ") {
		t.Errorf("version: %d %q", code, out)
	}
	for _, cmd := range []string{"run", "validate", "check", "runs", "inventory", "completion"} {
		for _, h := range []string{"--help", "-h"} {
			if code, out, errs := cli(t, cmd, h); code != 0 || !strings.HasPrefix(out, "Usage: kplay "+cmd) || errs != "" {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", cmd, h, code, out, errs)
			}
		}
	}
}
