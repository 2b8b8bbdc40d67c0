package runner

import (
	"time"

	"github.com/kplay/kplay/steps"
)

// Host and step statuses.
const (
	StatusOK          = "ok"
	StatusChanged     = "changed"
	StatusFailed      = "failed"
	StatusSkipped     = "skipped"
	StatusUnreachable = "unreachable"
	StatusRolledBack  = "rolled back"
	StatusNotRun      = "not run"
	StatusPlanned     = "planned"
)

// Report is the outcome of a run, also its JSON document.
type Report struct {
	Playbook    string        `json:"playbook"`
	File        string        `json:"file"`
	RunID       string        `json:"run_id"`
	DryRun      bool          `json:"dry_run"`
	Started     time.Time     `json:"started"`
	Duration    time.Duration `json:"-"`
	DurationSec float64       `json:"duration_seconds"`
	Interrupted bool          `json:"interrupted"`
	// Stopped says why no further batch started, if one did not.
	Stopped string        `json:"stopped,omitempty"`
	Hosts   []*HostReport `json:"hosts"`
	Totals  Totals        `json:"totals"`
}

// HostReport is one host's outcome.
type HostReport struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Batch   int    `json:"batch"`
	// Status is ok, changed, failed, unreachable, rolled back or not run.
	Status string `json:"status"`
	// Error is why the host failed.
	Error string `json:"error,omitempty"`
	// State says what state the host is left in, in words.
	State string `json:"state"`
	// Restore says how to restore by hand where a rollback failed.
	Restore []string      `json:"restore,omitempty"`
	Steps   []*StepReport `json:"steps"`
	Totals  Totals        `json:"totals"`

	undos []undoEntry
	err   error
}

// StepReport is one step on one host.
type StepReport struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Type  string `json:"type"`
	// Status is ok, changed, failed, skipped, rolled back, planned or not run.
	Status  string `json:"status"`
	Changed bool   `json:"changed"`
	// Started is when the step began on this host (omitted if it never ran).
	Started     time.Time     `json:"started,omitzero"`
	Duration    time.Duration `json:"-"`
	DurationSec float64       `json:"duration_seconds"`
	Attempts    int           `json:"attempts,omitempty"`
	Message     string        `json:"message,omitempty"`
	Details     []string      `json:"details,omitempty"`
	Error       string        `json:"error,omitempty"`
	// Rollback is what happened to this step's change on rollback.
	Rollback string      `json:"rollback,omitempty"`
	Plan     *steps.Plan `json:"plan,omitempty"`
	Data     any         `json:"data,omitempty"`
}

// Totals counts step outcomes, like Ansible's PLAY RECAP.
type Totals struct {
	OK          int `json:"ok"`
	Changed     int `json:"changed"`
	Failed      int `json:"failed"`
	Skipped     int `json:"skipped"`
	RolledBack  int `json:"rolled_back"`
	Unreachable int `json:"unreachable"`
	NotRun      int `json:"not_run"`
}

func (t *Totals) add(o Totals) {
	t.OK += o.OK
	t.Changed += o.Changed
	t.Failed += o.Failed
	t.Skipped += o.Skipped
	t.RolledBack += o.RolledBack
	t.Unreachable += o.Unreachable
	t.NotRun += o.NotRun
}

// Failed reports whether the host failed (a step failed or it was unreachable).
func (h *HostReport) Failed() bool {
	return h.err != nil
}

// Err returns the host's error.
func (h *HostReport) Err() error { return h.err }

// Changed reports whether any step of the host changed it (and was not rolled back).
func (h *HostReport) Changed() bool {
	for _, s := range h.Steps {
		if s.Changed && s.Status != StatusRolledBack {
			return true
		}
	}
	return false
}

// tally computes the host's totals from its steps.
func (h *HostReport) tally() {
	var t Totals
	for _, s := range h.Steps {
		switch s.Status {
		case StatusOK, StatusPlanned:
			t.OK++
		case StatusChanged:
			t.Changed++
		case StatusFailed:
			t.Failed++
		case StatusSkipped:
			t.Skipped++
		case StatusRolledBack:
			t.RolledBack++
		case StatusNotRun:
			t.NotRun++
		}
	}
	if h.Status == StatusUnreachable {
		t.Unreachable = 1
	}
	h.Totals = t
}
