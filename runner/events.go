package runner

import "time"

// EventType says what an Event records.
type EventType string

// The events of a run, in the order they happen for a host.
const (
	EventRunStart  EventType = "run_start"
	EventStepStart EventType = "step_start"
	EventStepEnd   EventType = "step_end"
	EventHostError EventType = "host_error"
	EventRollback  EventType = "rollback"
	EventRunEnd    EventType = "run_end"
)

// Event is one thing that happened in a run, for a run log. It carries
// only what the report and the screen show (step messages, details,
// errors and data, and a shell step's output as the transport returned
// it, with private keys withheld), never more.
type Event struct {
	Time  time.Time `json:"time"`
	Type  EventType `json:"type"`
	RunID string    `json:"run_id"`
	// Playbook, File, DryRun and Hosts: run_start only.
	Playbook string   `json:"playbook,omitempty"`
	File     string   `json:"file,omitempty"`
	DryRun   bool     `json:"dry_run,omitempty"`
	Hosts    []string `json:"hosts,omitempty"`
	Host     string   `json:"host,omitempty"`
	// Step is the step as the report shows it (step_start, step_end, rollback).
	Step *StepReport `json:"step,omitempty"`
	// Output is the full output of a shell step's command (step_end).
	Output string `json:"output,omitempty"`
	// Error is why the host failed (host_error).
	Error string `json:"error,omitempty"`
	// Outcome is ok, failed or interrupted; Totals and DurationSec too (run_end).
	Outcome     string  `json:"outcome,omitempty"`
	Totals      *Totals `json:"totals,omitempty"`
	DurationSec float64 `json:"duration_seconds,omitempty"`
}

// EventSink receives a run's events as they happen, from many host
// goroutines at once: implementations must be safe for concurrent use and
// must not block for long.
type EventSink interface {
	Event(e Event)
}

// emit sends e to the run's sink, if any, stamped with the time and run id.
func (r *run) emit(e Event) {
	if r.opts.Events == nil {
		return
	}
	e.Time = time.Now().UTC()
	e.RunID = r.rep.RunID
	r.opts.Events.Event(e)
}

// stepEvent is a step's event; the step report is copied, so the sink
// never sees it change afterwards.
func (r *run) stepEvent(typ EventType, hr *HostReport, sr *StepReport) {
	if r.opts.Events == nil {
		return
	}
	cp := *sr
	e := Event{Type: typ, Host: hr.Name, Step: &cp}
	if typ == EventStepEnd {
		e.Output = sr.Output
	}
	r.emit(e)
}

// outcome is the run's outcome in one word, for run_end.
func (rep *Report) outcome(failed bool) string {
	switch {
	case rep.Interrupted:
		return "interrupted"
	case failed:
		return "failed"
	}
	return "ok"
}

// hostNames lists the plan's hosts, in inventory order.
func hostNames(plan *Plan) []string {
	names := make([]string, 0, len(plan.Hosts))
	for _, h := range plan.Hosts {
		names = append(names, h.Name)
	}
	return names
}
