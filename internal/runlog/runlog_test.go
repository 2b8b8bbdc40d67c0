package runlog

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kplay/kplay/runner"
)

func TestDir(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"}, "/s/kplay/runs"},
		{map[string]string{"HOME": "/h"}, "/h/.local/state/kplay/runs"},
		{map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/h"}, "/h/.local/state/kplay/runs"},
	} {
		got, err := Dir(func(k string) string { return c.env[k] })
		if err != nil || got != c.want {
			t.Errorf("Dir(%v) = %q, %v; want %q", c.env, got, err, c.want)
		}
	}
}

// TestLogAndList: a run's events are JSON lines in a 0600 file in a 0700
// directory (whatever the umask), and List sums runs up, newest first.
func TestLogAndList(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "kplay", "runs")
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	write := func(id, outcome string, at time.Time) {
		l, err := Create(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		l.Event(runner.Event{Time: at, Type: runner.EventRunStart, RunID: id, Playbook: "Renew", File: "renew.yaml"})
		l.Event(runner.Event{Type: runner.EventStepEnd, RunID: id, Host: "cp1", Output: "line1\nline2\n"})
		if outcome != "" {
			l.Event(runner.Event{Type: runner.EventRunEnd, RunID: id, Outcome: outcome})
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("20261130T120000Z-aaaaaa", "ok", t0)
	write("20261130T130000Z-bbbbbb", "", t0.Add(time.Hour))
	write("20261130T140000Z-cccccc", "failed", t0.Add(2*time.Hour))
	for _, p := range []string{filepath.Dir(dir), dir} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", p, st.Mode().Perm())
		}
	}
	p := filepath.Join(dir, "20261130T120000Z-aaaaaa.jsonl")
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", st.Mode().Perm())
	}
	f, _ := os.Open(p)
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		var e runner.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Errorf("line %d: %v", lines+1, err)
		}
	}
	if lines != 3 {
		t.Errorf("%d lines, want 3", lines)
	}
	if _, err := Create(dir, "20261130T120000Z-aaaaaa"); err == nil {
		t.Error("Create overwrote an existing log")
	}
	runs, err := List(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != "20261130T140000Z-cccccc" || runs[0].Outcome != "failed" ||
		runs[1].Outcome != "unfinished" || !runs[1].Started.Equal(t0.Add(time.Hour)) || runs[1].File != "renew.yaml" {
		t.Errorf("List = %+v", runs)
	}
	if runs, err := List(filepath.Join(dir, "none"), 0); err != nil || len(runs) != 0 {
		t.Errorf("missing dir: %v, %v", runs, err)
	}
}
