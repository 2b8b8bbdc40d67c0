package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kplay/kplay/internal/runlog"
	"github.com/kplay/kplay/runner"
)

func TestCmdRuns(t *testing.T) {
	state := t.TempDir()
	env := func(k string) string {
		if k == "XDG_STATE_HOME" {
			return state
		}
		return ""
	}
	var out, errb bytes.Buffer
	if code := cmdRuns(nil, env, &out, &errb); code != exitOK || !strings.Contains(out.String(), "no runs recorded in "+state) {
		t.Errorf("empty: exit %d, %q %q", code, out.String(), errb.String())
	}
	dir, _ := runlog.Dir(env)
	l, err := runlog.Create(dir, "20261130T120000Z-abcdef")
	if err != nil {
		t.Fatal(err)
	}
	l.Event(runner.Event{Type: runner.EventRunStart, File: "playbooks/renew.yaml", DryRun: true})
	l.Event(runner.Event{Type: runner.EventRunEnd, Outcome: "interrupted"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := cmdRuns(nil, env, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, w := range []string{"20261130T120000Z-abcdef", "playbooks/renew.yaml", "interrupted (dry run)"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("kplay runs lacks %q:\n%s", w, out.String())
		}
	}
	if code := cmdRuns([]string{"-n", "-1"}, env, &out, &errb); code != exitUsage {
		t.Errorf("-n -1: exit %d, want 2", code)
	}
}
