package runner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kplay/kplay/steps"
)

func TestPlaysAreBarriers(t *testing.T) {
	rep, log, err := fakeRun(t, context.Background(), 3, `
- name: renew everywhere
  hosts: all
  steps:
    - fake: {id: renew, undo: true, sleep: 20ms}
- name: restart one by one
  hosts: all
  serial: 1
  steps:
    - fake: {id: restart}
`)
	if err != nil {
		t.Fatal(err)
	}
	// Every host renews before any host restarts.
	lastRenew, firstRestart := -1, len(log)
	for i, l := range log {
		if strings.HasSuffix(l, " renew") {
			lastRenew = i
		}
		if strings.HasSuffix(l, " restart") && i < firstRestart {
			firstRestart = i
		}
	}
	if lastRenew < 0 || lastRenew > firstRestart {
		t.Errorf("a restart ran before every renew finished: %v", log)
	}
	if got := filter(log, "apply"); len(got) != 6 {
		t.Errorf("applies = %v, want 3 renews and 3 restarts", got)
	}
	if got := filter(log, "dial"); len(got) != 3 {
		t.Errorf("dials = %v: one connection per host for all plays", got)
	}
	if len(rep.Plays) != 2 || !rep.Plays[0].Ran || !rep.Plays[1].Ran || rep.Plays[1].Serial != "1" {
		t.Errorf("plays = %+v", rep.Plays)
	}
	h1 := rep.Hosts[0]
	if len(h1.Steps) != 2 || h1.Steps[0].Play != 1 || h1.Steps[1].Play != 2 || h1.Steps[1].Index != 0 {
		t.Errorf("h1 steps: %+v %+v", h1.Steps[0], h1.Steps[1])
	}
	if !strings.Contains(rep.Hosts[0].State, "changed by") || rep.Hosts[0].Status != StatusChanged {
		t.Errorf("h1: %s, %s", rep.Hosts[0].Status, rep.Hosts[0].State)
	}
}

func TestPlayFailureStopsLaterPlaysAndRollsBackAcrossPlays(t *testing.T) {
	rep, log, err := fakeRun(t, context.Background(), 3, `
- hosts: all
  steps:
    - fake: {id: a, undo: true}
- hosts: all
  serial: 1
  steps:
    - fake: {id: b, undo: true}
    - fake: {id: c, fail_on: h2}
- hosts: all
  steps:
    - fake: {id: d}
`)
	if err == nil {
		t.Fatal("no error")
	}
	// h2 fails in play 2: its changes of plays 2 and 1 are undone, latest
	// first; h1 (done) and h3 (play 2 not reached) keep theirs.
	if got, want := filter(log, "undo"), []string{"undo h2 b", "undo h2 a"}; !slices.Equal(got, want) {
		t.Errorf("undos = %v, want %v", got, want)
	}
	if slices.Contains(log, "apply h3 b") || len(filter(log, "apply h1 d")) > 0 {
		t.Errorf("work went on after max_fail was exceeded: %v", log)
	}
	if got := hostStatus(rep); got != "h1=changed h2=failed h3=changed" {
		t.Errorf("status = %s", got)
	}
	if !rep.Plays[1].Ran || rep.Plays[2].Ran {
		t.Errorf("plays ran: %+v", rep.Plays)
	}
	for _, want := range []string{"in play 2", "batches 3 to 3 of play 2", "play 3"} {
		if !strings.Contains(rep.Stopped, want) {
			t.Errorf("stopped = %q, want it to name %q", rep.Stopped, want)
		}
	}
	if st := rep.Hosts[1].State; !strings.Contains(st, `rolled back "fake", "fake"`) {
		t.Errorf("h2 state = %q", st)
	}
}

func TestUndoKeptOnPurpose(t *testing.T) {
	rep, log, err := fakeRun(t, context.Background(), 1, `
- hosts: all
  steps:
    - fake: {id: renew, undo: true, undo_keep: true}
- hosts: all
  steps:
    - fake: {id: park, undo: true}
    - fake: {id: restart, fail_on: h1}
`)
	if err == nil {
		t.Fatal("no error")
	}
	if got, want := append(filter(log, "undo"), filter(log, "keep")...), []string{"undo h1 park", "keep h1 renew"}; !slices.Equal(got, want) {
		t.Errorf("undos = %v, want %v", got, want)
	}
	h := rep.Hosts[0]
	if h.Status != StatusFailed || len(h.Restore) != 0 {
		t.Errorf("status %s, restore %v: a kept change is no rollback failure", h.Status, h.Restore)
	}
	if s := h.Steps[0]; s.Status != StatusChanged || !strings.Contains(s.Rollback, "not rolled back on purpose: undoing renew would make it worse") {
		t.Errorf("renew step: %s, %q", s.Status, s.Rollback)
	}
	if !strings.Contains(h.State, `kept on purpose "fake" (undoing renew would make it worse)`) || strings.Contains(h.State, "NEEDS ATTENTION") {
		t.Errorf("state = %q", h.State)
	}
	var kept *steps.KeptError
	if errors.As(err, &kept) {
		t.Errorf("a kept undo leaked into the run's error: %v", err)
	}
}

func TestRollbackAllAcrossPlays(t *testing.T) {
	_, log, err := fakeRun(t, context.Background(), 2, `
- hosts: all
  steps:
    - fake: {id: a, undo: true}
- hosts: all
  serial: 1
  rollback: all
  steps:
    - fake: {id: b, undo: true, fail_on: h2}
`)
	if err == nil {
		t.Fatal("no error")
	}
	// h2 rolls itself back at once; then h1 (play 2 batch 1, then play 1).
	want := []string{"undo h2 a", "undo h1 b", "undo h1 a"}
	if got := filter(log, "undo"); !slices.Equal(got, want) {
		t.Errorf("undos = %v, want %v", got, want)
	}
}

func TestParsePlaysErrors(t *testing.T) {
	reg := steps.Builtin()
	tests := []struct{ name, yaml, want string }{
		{"no plays", "[]\n", "pb.yaml:1: playbook has no plays"},
		{"play not a mapping", "- hosts: all\n  steps: [{shell: x}]\n- just a string\n", `pb.yaml:3: key "[1]": a play must be a mapping`},
		{"unknown key in play 2", "- hosts: all\n  steps: [{shell: x}]\n- hosts: all\n  stepz: []\n  steps: [{shell: x}]\n", `pb.yaml:4: key "[1].stepz": unknown key`},
		{"bad step in play 2", "- hosts: all\n  steps: [{shell: x}]\n- hosts: all\n  steps:\n    - shel: x\n", `pb.yaml:5: key "[1].steps[0].shel": unknown step type`},
		{"bad serial in play 1", "- hosts: all\n  serial: 0\n  steps: [{shell: x}]\n", `pb.yaml:2: key "[0].serial": bad value`},
		{"no hosts", "- steps: [{shell: x}]\n", `pb.yaml:1: key "[0].hosts": is required`},
		{"scalar", "hello\n", "pb.yaml:1: a playbook is a play"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePlaybook("pb.yaml", []byte(tt.yaml), reg)
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n  %v\nwant config error containing\n  %s", err, tt.want)
			}
		})
	}
}

func TestCompilePlaysUnknownHostNamesPlay(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte("hosts:\n  cp1: {}\ngroups:\n  cp: [cp1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := ParsePlaybook("pb.yaml", []byte("- hosts: cp\n  steps: [{shell: x}]\n- hosts: cp, nope\n  steps: [{shell: x}]\n"), steps.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(pb, inv, CompileOptions{})
	if err == nil || !strings.Contains(err.Error(), `pb.yaml:3: key "[1].hosts": unknown host or group "nope"`) {
		t.Fatalf("err = %v", err)
	}
}
