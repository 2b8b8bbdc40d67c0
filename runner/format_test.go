package runner

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/steps"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixedReport is a report with every status, for golden output tests.
func fixedReport() *Report {
	start := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	rep := &Report{Playbook: "Renew", File: "playbooks/renew.yaml", RunID: "20261129T120000Z-abcdef", Started: start, Duration: 4200 * time.Millisecond, DurationSec: 4.2,
		Plays: []PlayReport{{Name: "Renew", Hosts: []string{"cp1", "cp2", "cp3"}, Serial: "1", Ran: true}}}
	h1 := &HostReport{Name: "cp1", Address: "10.0.0.11", Batch: 1, Status: StatusChanged, State: `changed by "renew"`, Steps: []*StepReport{
		{Play: 1, Index: 0, Name: "check", Type: "shell", Status: StatusOK, Started: start.Add(100 * time.Millisecond), Duration: 120 * time.Millisecond, DurationSec: 0.12, Attempts: 1, Message: "ok"},
		{Play: 1, Index: 1, Name: "renew", Type: "shell", Status: StatusChanged, Changed: true, Started: start.Add(220 * time.Millisecond), Duration: 1500 * time.Millisecond, DurationSec: 1.5, Attempts: 2, Message: "renewed", Details: []string{"apiserver: 2027-11-29"}},
	}}
	h2 := &HostReport{Name: "cp2", Address: "10.0.0.12", Batch: 2, Status: StatusFailed, Error: `step "renew": exit status 1: kubeadm: error`, State: `rolled back "check"; step "renew" failed`,
		Restore: []string{`step "x": cp -a /var/lib/kplay/backups/r/. /etc/kubernetes/`},
		Steps: []*StepReport{
			{Play: 1, Index: 0, Name: "check", Type: "shell", Status: StatusRolledBack, Changed: true, Duration: 80 * time.Millisecond, DurationSec: 0.08, Attempts: 1, Rollback: "rolled back (run: rm -f x) in 5ms"},
			{Play: 1, Index: 1, Name: "renew", Type: "shell", Status: StatusFailed, Duration: 900 * time.Millisecond, DurationSec: 0.9, Attempts: 1, Error: "exit status 1: kubeadm: error\nline two"},
		}, err: os.ErrInvalid}
	h3 := &HostReport{Name: "cp3", Address: "10.0.0.13", Batch: 3, Status: StatusNotRun, State: "not contacted", Steps: []*StepReport{
		{Play: 1, Index: 0, Name: "check", Type: "shell", Status: StatusNotRun},
		{Play: 1, Index: 1, Name: "renew", Type: "shell", Status: StatusNotRun, Plan: &steps.Plan{Summary: "x"}},
	}}
	rep.Hosts = []*HostReport{h1, h2, h3}
	rep.Stopped = "1 host(s) failed, more than max_fail 0: batches 3 to 3 not started"
	for _, h := range rep.Hosts {
		h.tally()
		rep.Totals.add(h.Totals)
	}
	return rep
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./runner -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGoldenText(t *testing.T) {
	rep := fixedReport()
	var b bytes.Buffer
	for _, h := range rep.Hosts {
		for _, s := range h.Steps {
			if s.Status != StatusNotRun {
				b.WriteString(StepLine(h, s) + "\n")
			}
		}
	}
	b.WriteString(RollbackLine(rep.Hosts[1], rep.Hosts[1].Steps[0]) + "\n")
	if err := WriteRecap(&b, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt.golden", b.Bytes())
}

func TestGoldenJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, fixedReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json.golden", b.Bytes())
}

// TestVerboseShowsOutput: -v puts the step's full output under its line.
func TestVerboseShowsOutput(t *testing.T) {
	h := &HostReport{Name: "cp1"}
	s := &StepReport{Name: "hello", Status: StatusChanged, Message: "two", Output: "one\ntwo\n"}
	h.Steps = []*StepReport{s}
	for _, verbose := range []bool{false, true} {
		var b strings.Builder
		lw := NewLineWriter(&b, nil, 1)
		lw.Verbose = verbose
		lw.Step(h, s)
		got := strings.Contains(b.String(), "    | one\n    | two\n")
		if got != verbose {
			t.Errorf("verbose=%v: output shown=%v:\n%s", verbose, got, b.String())
		}
	}
}

// TestProgressColor: the counter is bold only when Color is set.
func TestProgressColor(t *testing.T) {
	h := &HostReport{Name: "cp1"}
	s := &StepReport{Name: "a", Status: StatusOK}
	h.Steps = []*StepReport{s}
	for _, color := range []bool{false, true} {
		var out, progress strings.Builder
		lw := NewLineWriter(&out, &progress, 1)
		lw.Color = color
		lw.Step(h, s)
		if got := strings.Contains(progress.String(), "\033[1m[1/1 hosts done]\033[0m"); got != color {
			t.Errorf("color=%v: progress %q", color, progress.String())
		}
		if strings.Contains(out.String(), "\033") {
			t.Errorf("escape codes in the step lines: %q", out.String())
		}
	}
}

// TestRecapNothingToDo: the recap says there was nothing to do only for a
// real run in which no host changed, failed, rolled back or was left out.
func TestRecapNothingToDo(t *testing.T) {
	quiet := func() *Report {
		return &Report{Playbook: "Renew", RunID: "r", Hosts: []*HostReport{
			{Name: "cp1", Status: StatusOK, Totals: Totals{OK: 3, Skipped: 2}},
			{Name: "cp2", Status: StatusOK, Totals: Totals{OK: 5}},
		}}
	}
	tests := []struct {
		name   string
		change func(*Report)
		want   bool
	}{
		{"nothing changed", func(*Report) {}, true},
		{"one change", func(r *Report) { r.Hosts[1].Totals.Changed = 1 }, false},
		{"a failure", func(r *Report) { r.Hosts[0].Totals.Failed = 1 }, false},
		{"a host not run", func(r *Report) { r.Hosts[0].Totals.NotRun = 2 }, false},
		{"dry run", func(r *Report) { r.DryRun = true }, false},
		{"stopped", func(r *Report) { r.Stopped = "could not lock" }, false},
	}
	for _, tt := range tests {
		rep := quiet()
		tt.change(rep)
		var b strings.Builder
		if err := WriteRecap(&b, rep); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), "nothing to do"); got != tt.want {
			t.Errorf("%s: says nothing to do = %v, want %v\n%s", tt.name, got, tt.want, b.String())
		}
	}
}
