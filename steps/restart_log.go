package steps

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// RestartLog records, for one host and run, which static pods
// restart_apiserver restarted and with which settings, so that renew_certs'
// undo can restart them again onto the certificates it restores.
type RestartLog struct {
	mu    sync.Mutex
	step  *RestartAPIServer
	names []string
}

// record notes the components about to be restarted (before the attempt:
// what runs must match the disk after an undo, even if the attempt failed).
func (l *RestartLog) record(s *RestartAPIServer, prs []*PodRestart) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cp := *s
	l.step = &cp
	for _, pr := range prs {
		if pr.Restarted && !slices.Contains(l.names, pr.Name) {
			l.names = append(l.names, pr.Name)
		}
	}
}

// Again restarts, with the same settings, every component recorded, and
// forgets them; it returns their names ("" if there were none).
func (l *RestartLog) Again(ctx context.Context, t *Target) (string, error) {
	l.mu.Lock()
	step, names := l.step, slices.Clone(l.names)
	l.mu.Unlock()
	if step == nil || len(names) == 0 {
		return "", nil
	}
	s := *step
	s.Components, s.Restart = names, RestartAlways
	if _, err := s.Apply(ctx, t); err != nil {
		return "", err
	}
	l.mu.Lock()
	l.step, l.names = nil, nil
	l.mu.Unlock()
	return strings.Join(names, ", "), nil
}
