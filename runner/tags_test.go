package runner

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/kplay/kplay/steps"
)

func TestStepFilterRuns(t *testing.T) {
	tests := []struct {
		tags, skip string
		// want lists which of the steps below run.
		want string
	}{
		{"", "", "untagged renew both always"},
		{"renew", "", "renew both always"},
		{"never", "", "never always"},
		{"all", "", "untagged renew both always"},
		{"tagged", "", "renew both always"},
		{"untagged", "", "untagged always"},
		{"", "renew", "untagged always"},
		{"", "all", "always"},
		{"", "all,always", ""},
		{"", "always", "untagged renew both"},
		{"", "tagged", "untagged"},
		{"renew,never", "verify", "renew never always"},
		{"check", "", "always"},
	}
	stepTags := map[string][]string{
		"untagged": nil, "renew": {"renew"}, "both": {"renew", "verify"}, "never": {"never", "debug"}, "always": {"always"},
	}
	order := []string{"untagged", "renew", "both", "never", "always"}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	for _, tt := range tests {
		f := StepFilter{Tags: split(tt.tags), SkipTags: split(tt.skip)}
		var got []string
		for _, name := range order {
			if f.runs(stepTags[name]) {
				got = append(got, name)
			}
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("--tags %q --skip-tags %q: run %q, want %q", tt.tags, tt.skip, strings.Join(got, " "), tt.want)
		}
	}
}

const taggedPlaybook = `
- name: renew
  hosts: cp
  steps:
    - name: check
      shell: echo check
      tags: check
    - name: renew
      shell: echo renew
      tags: [renew]
    - name: verify
      shell: echo verify
      tags: [renew, verify]
- name: restart
  hosts: cp1
  serial: 1
  steps:
    - name: restart
      shell: echo restart
      tags: restart
    - name: debug
      shell: echo debug
      tags: [never, debug]
`

func TestCompileStepFilter(t *testing.T) {
	inv, err := ParseInventory("inv.ini", []byte("[cp]\ncp1\ncp2\n"))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := ParsePlaybook("pb.yaml", []byte(taggedPlaybook), steps.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    StepFilter
		want string
	}{
		{"default", StepFilter{}, "renew:check,renew,verify restart:restart skipped:debug/tags"},
		{"tags", StepFilter{Tags: []string{"verify", "debug"}}, "renew:verify restart:debug skipped:check/tags,renew/tags,restart/tags"},
		{"skip a whole play", StepFilter{SkipTags: []string{"restart"}}, "renew:check,renew,verify skipped:restart/tags,debug/tags"},
		{"start at", StepFilter{StartAt: "ver*"}, "renew:verify restart:restart skipped:check/start-at-step,renew/start-at-step,debug/tags"},
		{"start at by type", StepFilter{StartAt: "shell"}, "renew:check,renew,verify restart:restart skipped:debug/tags"},
		{"unknown tag", StepFilter{Tags: []string{"renw"}}, `error: --tags: no step of pb.yaml has tag "renw" (tags: check, debug, never, renew, restart, verify)`},
		{"unknown skip tag", StepFilter{SkipTags: []string{"x"}}, `error: --skip-tags: no step of pb.yaml has tag "x"`},
		{"unknown start", StepFilter{StartAt: "nope"}, `error: --start-at-step: no step of pb.yaml is named "nope" (steps: check, renew, verify, restart, debug)`},
		{"nothing left", StepFilter{SkipTags: []string{"all"}}, `error: --tags: --skip-tags all leaves no step of pb.yaml to run`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Compile(pb, inv, CompileOptions{Steps: tt.f})
			if err != nil {
				if !IsConfigError(err) {
					t.Fatalf("not a config error: %v", err)
				}
				if got := "error: " + err.Error(); !strings.HasPrefix(got, tt.want) {
					t.Fatalf("%s\nwant %s", got, tt.want)
				}
				return
			}
			var parts, skipped []string
			for _, pp := range plan.Plays {
				var names []string
				for _, se := range pp.Play.Steps {
					names = append(names, se.Label())
				}
				if len(pp.Steps["cp1"]) != len(names) {
					t.Errorf("%s: %d bound steps for %d steps", pp.Play.Name, len(pp.Steps["cp1"]), len(names))
				}
				parts = append(parts, pp.Play.Name+":"+strings.Join(names, ","))
			}
			for _, s := range plan.Skipped {
				skipped = append(skipped, s.Name+"/"+s.Why)
			}
			got := strings.Join(parts, " ")
			if len(skipped) > 0 {
				got += " skipped:" + strings.Join(skipped, ",")
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestGoldenListing(t *testing.T) {
	inv, err := ParseInventory("inv.ini", []byte("[cp]\ncp1\ncp2\n"))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := ParsePlaybook("pb.yaml", []byte(taggedPlaybook), steps.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(pb, inv, CompileOptions{Steps: StepFilter{SkipTags: []string{"verify"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file         string
		hosts, steps bool
	}{{"list-hosts.golden", true, false}, {"list-steps.golden", false, true}} {
		var b bytes.Buffer
		if err := WriteListing(&b, plan, tc.hosts, tc.steps); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.file, b.Bytes())
	}
	var b bytes.Buffer
	writeSkippedTo(&b, plan.Skipped)
	if want := "skipped by tags: renew: verify (shell) [tags: renew, verify]\nskipped by tags: restart: debug (shell) [tags: never, debug]\n"; b.String() != want {
		t.Errorf("recap lines:\n%s\nwant\n%s", b.String(), want)
	}
}

func writeSkippedTo(b *bytes.Buffer, s []SkippedStep) {
	var sb strings.Builder
	writeSkipped(&sb, s)
	fmt.Fprint(b, sb.String())
}
