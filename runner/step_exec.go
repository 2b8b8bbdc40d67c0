package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kplay/kplay/steps"
)

// Running one step on one host: its plan in a dry run, or its apply with
// retries, each bounded by the step's timeout.

// planStep calls the step's read-only Plan (a dry run).
func planStep(ctx context.Context, t *steps.Target, st steps.Step, sr *StepReport, timeout time.Duration) error {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := st.Plan(sctx, t)
	sr.Attempts = 1
	if reason, ok := steps.IsSkip(err); ok {
		sr.Status = StatusSkipped
		sr.Message = reason
		return nil
	}
	if err != nil {
		err = timeoutErr(sctx, timeout, err)
		sr.Status = StatusFailed
		sr.Error = err.Error()
		return err
	}
	sr.Status = StatusPlanned
	sr.Plan = &p
	sr.Message, sr.Details, sr.Data = p.Summary, p.Details, p.Data
	return nil
}

// applyWithRetries applies the step, retrying a failure up to se.Retries
// times, se.Delay apart; a skip or an interrupt ends it at once.
func applyWithRetries(ctx context.Context, t *steps.Target, se *StepEntry, st steps.Step, sr *StepReport, timeout time.Duration) (steps.Result, error) {
	var res steps.Result
	var err error
	for attempt := 0; attempt <= se.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return res, fmt.Errorf("interrupted while waiting to retry; attempt %d: %w", attempt, err)
			case <-time.After(se.Delay):
			}
		}
		sr.Attempts = attempt + 1
		sctx, cancel := context.WithTimeout(ctx, timeout)
		res, err = st.Apply(sctx, t)
		err = timeoutErr(sctx, timeout, err)
		cancel()
		if _, skip := steps.IsSkip(err); err == nil || skip || ctx.Err() != nil {
			return res, err
		}
	}
	return res, err
}

// timeoutErr says so when a step's own timeout ended it.
func timeoutErr(sctx context.Context, d time.Duration, err error) error {
	if err != nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", d, err)
	}
	return err
}
