package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// sink records events, as a run log would.
type sink struct {
	mu sync.Mutex
	ev []Event
}

func (s *sink) Event(e Event) {
	s.mu.Lock()
	s.ev = append(s.ev, e)
	s.mu.Unlock()
}

// line is an event in a few words, for comparing.
func (e Event) line() string {
	switch {
	case e.Step != nil:
		return fmt.Sprintf("%s %s %s %s", e.Type, e.Host, e.Step.Name, e.Step.Status)
	case e.Host != "":
		return fmt.Sprintf("%s %s", e.Type, e.Host)
	case e.Type == EventRunEnd:
		return fmt.Sprintf("%s %s", e.Type, e.Outcome)
	}
	return string(e.Type)
}

// TestEventsOfARun: each step's start and end, rollbacks, unreachable hosts
// and the run's start and end reach the sink, per host in order.
func TestEventsOfARun(t *testing.T) {
	tests := []struct {
		name        string
		src         string
		unreachable []string
		want        map[string][]string // per host ("" for the run), in order
	}{
		{
			name: "a failure rolls back",
			src:  "hosts: all\nsteps:\n  - {name: a, fake: {id: a, undo: true}}\n  - {name: b, fake: {id: b, fail_on: h1}}\n",
			want: map[string][]string{
				"":   {"run_start", "run_end failed"},
				"h1": {"step_start h1 a not run", "step_end h1 a changed", "step_start h1 b not run", "step_end h1 b failed", "rollback h1 a rolled back"},
			},
		},
		{
			name: "unreachable", src: "hosts: all\nsteps:\n  - {name: a, fake: {id: a}}\n", unreachable: []string{"h1"},
			want: map[string][]string{"": {"run_start", "run_end failed"}, "h1": {"host_error h1"}},
		},
		{
			name: "ok",
			src:  "hosts: all\nsteps:\n  - {name: a, fake: {id: a}}\n",
			want: map[string][]string{"": {"run_start", "run_end ok"}, "h1": {"step_start h1 a not run", "step_end h1 a changed"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{}
			_, _, _ = fakeRunWith(t, context.Background(), 1, tt.src, Options{RunID: "r1", Events: s}, tt.unreachable...)
			got := map[string][]string{}
			for _, e := range s.ev {
				if e.RunID != "r1" || e.Time.IsZero() {
					t.Errorf("event without run id or time: %+v", e)
				}
				got[e.Host] = append(got[e.Host], e.line())
			}
			for host, want := range tt.want {
				if strings.Join(got[host], "\n") != strings.Join(want, "\n") {
					t.Errorf("host %q events:\n%s\nwant:\n%s", host, strings.Join(got[host], "\n"), strings.Join(want, "\n"))
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("events for %d hosts, want %d: %v", len(got), len(tt.want), got)
			}
		})
	}
}
