package runner

import (
	"time"

	"github.com/kplay/kplay/steps"
)

// Status is a host's or a step's outcome, as the report shows it.
type Status string

// Host and step statuses.
const (
	StatusOK          Status = "ok"
	StatusChanged     Status = "changed"
	StatusFailed      Status = "failed"
	StatusSkipped     Status = "skipped"
	StatusUnreachable Status = "unreachable"
	StatusRolledBack  Status = "rolled back"
	StatusNotRun      Status = "not run"
	StatusPlanned     Status = "planned"
)

// rollbackOutcome is what happened to a step's change on rollback: the
// typed fact behind StepReport.Rollback's words.
type rollbackOutcome int

const (
	rbNone           rollbackOutcome = iota // not rolled back (nothing to undo, or no rollback ran)
	rbDone                                  // undone
	rbFailed                                // the undo failed: see the host's restore hints
	rbRestoredByStep                        // the failed step undid its own partial change
	rbKept                                  // the undo declined on purpose: undoing would make things worse
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
	Stopped string `json:"stopped,omitempty"`
	// Resume is the command that finishes the run on the hosts it did not
	// finish, once the cause is fixed (omitted when every host finished).
	Resume string `json:"resume,omitempty"`
	// Plays lists the playbook's plays, in order.
	Plays []PlayReport `json:"plays"`
	// Skipped lists the steps --tags, --skip-tags or --start-at-step left
	// out: they did not run on any host.
	Skipped []SkippedStep `json:"skipped_steps,omitempty"`
	Hosts   []*HostReport `json:"hosts"`
	Totals  Totals        `json:"totals"`
}

// PlayReport is one play of the run.
type PlayReport struct {
	Name   string   `json:"name"`
	Hosts  []string `json:"hosts"`
	Serial string   `json:"serial"`
	// Ran is false when the play did not start (see Report.Stopped).
	Ran bool `json:"ran"`
}

// HostReport is one host's outcome.
type HostReport struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Batch is the host's batch in the first play it is in.
	Batch int `json:"batch"`
	// Status is ok, changed, failed, unreachable, rolled back or not run.
	Status Status `json:"status"`
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
	// plays holds the host's step reports by play index.
	plays map[int][]*StepReport
}

// StepReport is one step on one host.
type StepReport struct {
	// Play is the step's play, from 1.
	Play int `json:"play"`
	// Index is the step's position in its play, from 0.
	Index int    `json:"index"`
	Name  string `json:"name"`
	Type  string `json:"type"`
	// Status is ok, changed, failed, skipped, rolled back, planned or not run.
	Status  Status `json:"status"`
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
	// Output is the full output of a shell step's command, for -v and the
	// run log; the report's JSON leaves it out (Message has its last line).
	Output string `json:"-"`

	rb rollbackOutcome
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

// ranPlay reports whether any step of play pi ran on the host.
func (h *HostReport) ranPlay(pi int) bool {
	for _, s := range h.plays[pi] {
		if s.Status != StatusNotRun {
			return true
		}
	}
	return h.Status == StatusUnreachable
}

// Unfinished lists the hosts on which some step failed or did not run.
func (r *Report) Unfinished() []string {
	var out []string
	for _, h := range r.Hosts {
		for _, s := range h.Steps {
			if s.Status == StatusFailed || s.Status == StatusNotRun || h.Status == StatusUnreachable {
				out = append(out, h.Name)
				break
			}
		}
	}
	return out
}

// kept reports whether a rollback kept a change of the host on purpose.
func (h *HostReport) kept() bool {
	for _, s := range h.Steps {
		if s.rb == rbKept {
			return true
		}
	}
	return false
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
