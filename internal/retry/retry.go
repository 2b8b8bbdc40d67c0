// Package retry polls a condition until it holds, fails, or time runs out.
package retry

import (
	"context"
	"fmt"
	"time"
)

// Check is one attempt: done reports success; state says what was seen
// (for the timeout message); err ends the polling at once, unless the
// attempt was cut off by the deadline.
type Check func(ctx context.Context) (done bool, state string, err error)

// Poll calls f every interval until it reports done, returns an error, or
// timeout passes. what names the awaited condition in errors. A timeout
// error names the last real answer: an attempt cut off by the deadline
// says nothing about the thing polled, so it does not replace it.
func Poll(ctx context.Context, timeout, interval time.Duration, what string, f Check) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		done, state, err := f(pctx)
		if err != nil && pctx.Err() == nil {
			return err
		}
		if done && err == nil {
			return nil
		}
		if state != "" && err == nil {
			last = state
		}
		t := time.NewTimer(interval)
		select {
		case <-pctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
			}
			if last == "" {
				last = "no answer"
			}
			return fmt.Errorf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
		case <-t.C:
		}
	}
}
