package steps

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kplay/kplay/internal/retry"
	"github.com/kplay/kplay/internal/shellquote"
)

// crictlIDs returns the running container ids of a component.
func (s *RestartAPIServer) crictlIDs(ctx context.Context, t *Target, c component) ([]string, error) {
	out, err := t.Run(ctx, shellquote.QuoteAll(s.Crictl, "ps", "-q", "--state", "running", "--name", "^"+c.name+"$"))
	if err != nil {
		return nil, fmt.Errorf("%s ps: %w", s.Crictl, err)
	}
	return strings.Fields(string(out)), nil
}

// restartCrictl stops each component's container, one at a time, and
// waits for kubelet to start a new one.
func (s *RestartAPIServer) restartCrictl(ctx context.Context, t *Target, comps []component) error {
	for _, c := range comps {
		old, err := s.crictlIDs(ctx, t, c)
		if err != nil {
			return err
		}
		if len(old) == 0 {
			return fmt.Errorf("no running container named %s (crictl ps)", c.name)
		}
		if _, err := t.Run(ctx, shellquote.QuoteAll(append([]string{s.Crictl, "stop"}, old...)...)); err != nil {
			return fmt.Errorf("%s stop %s: %w", s.Crictl, strings.Join(old, " "), err)
		}
		err = retry.Poll(ctx, s.DownTimeout+s.UpTimeout, s.PollInterval, fmt.Sprintf("kubelet to start a new %s container", c.name),
			func(ctx context.Context) (bool, string, error) {
				ids, err := s.crictlIDs(ctx, t, c)
				if err != nil {
					return false, "", err
				}
				for _, id := range ids {
					if !slices.Contains(old, id) {
						return true, "", nil
					}
				}
				return false, fmt.Sprintf("running: %v", ids), nil
			})
		if err != nil {
			return err
		}
	}
	return nil
}
