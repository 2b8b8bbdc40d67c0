package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/retry"
	"github.com/kplay/kplay/steps"
	"golang.org/x/sync/errgroup"
)

// Rolling back: a host's undos in reverse order, the run-wide rollback of
// rollback: all, and the state each host is left in.

// rollback runs the host's undos, of every play, in reverse order, each
// with a fresh context and its own timeout, and records what state the
// host is left in. An undo that declines on purpose (steps.KeptError)
// keeps its change and is not a failure.
func (r *run) rollback(hr *HostReport, t *steps.Target) {
	var merr *multierror.Error
	for i := len(hr.undos) - 1; i >= 0; i-- {
		u := hr.undos[i]
		ctx, cancel := context.WithTimeout(r.opts.RollbackCtx, r.opts.UndoTimeout)
		start := time.Now()
		err := u.undo.Fn(ctx, t)
		cancel()
		again := ""
		if err != nil && u.undo.Repeatable {
			if after, rerr, retried := r.undoOverNewConnection(u, t); retried && rerr == nil {
				again = fmt.Sprintf(", over a new SSH connection: the first was lost and kplay connected again in %s", after.Round(100*time.Millisecond))
				err = nil
			} else if retried {
				err = fmt.Errorf("the SSH connection was lost (%v); %w", err, rerr)
			}
		}
		var kept *steps.KeptError
		switch {
		case errors.As(err, &kept):
			u.step.Rollback = "not rolled back on purpose: " + kept.Reason
			u.step.rb = rbKept
		case err != nil:
			err = fmt.Errorf("%s: undo of step %q (%s): %w", hr.Name, u.step.Name, u.undo.Desc, err)
			merr = multierror.Append(merr, err)
			u.step.Rollback = "rollback failed: " + err.Error()
			u.step.rb = rbFailed
			if u.undo.Restore != "" {
				hr.Restore = append(hr.Restore, fmt.Sprintf("step %q: %s", u.step.Name, u.undo.Restore))
			}
		default:
			u.step.Rollback = fmt.Sprintf("rolled back (%s) in %s%s", u.undo.Desc, time.Since(start).Round(time.Millisecond), again)
			u.step.Status = StatusRolledBack
			u.step.rb = rbDone
		}
		r.stepEvent(EventRollback, hr, u.step)
		if r.opts.OnRollback != nil {
			r.opts.OnRollback(hr, u.step)
		}
	}
	hr.undos = nil
	if err := merr.ErrorOrNil(); err != nil {
		r.hostErr(err)
		if hr.err == nil {
			hr.err = err
			hr.Error = err.Error()
		}
		hr.Status = StatusFailed
	} else if hr.Status != StatusFailed && hr.Status != StatusUnreachable && !hr.kept() {
		hr.Status = StatusRolledBack
	}
	hr.State = r.describeState(hr)
}

// undoOverNewConnection runs a repeatable undo that failed once more, if
// its host's connection is gone: a probe command that fails without an
// exit status says so. It reconnects every second within the undo timeout
// and runs the undo over the new connection. retried is false when the
// connection still works (the undo's failure stands) or cannot be opened
// again in time (err then says why).
func (r *run) undoOverNewConnection(u undoEntry, t *steps.Target) (after time.Duration, err error, retried bool) {
	rc, ok := t.Host.(steps.Reconnector)
	if !ok {
		return 0, nil, false
	}
	ctx, cancel := context.WithTimeout(r.opts.RollbackCtx, r.opts.UndoTimeout)
	defer cancel()
	_, perr := t.Run(ctx, "true")
	if _, exited := hostexec.ExitStatus(perr); perr == nil || exited || ctx.Err() != nil {
		return 0, nil, false
	}
	start := time.Now()
	err = retry.Poll(ctx, r.opts.UndoTimeout, time.Second, "a new SSH connection to "+t.Host.Name(), func(ctx context.Context) (bool, string, error) {
		if rerr := rc.Reconnect(ctx); rerr != nil {
			return false, rerr.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		return 0, fmt.Errorf("undo not run again: %w", err), true
	}
	after = time.Since(start)
	if err := u.undo.Fn(ctx, t); err != nil {
		return after, fmt.Errorf("run again over a new connection: %w", err), true
	}
	return after, nil, true
}

// finalRollback undoes other hosts after the plays: every changed host
// when the play that stopped the run says rollback: all, or when the run
// was interrupted (unless that play says none). Later batches (and later
// plays) are undone first; the hosts of one batch in parallel.
func (r *run) finalRollback() {
	if r.opts.DryRun {
		return
	}
	mode := r.failMode
	if r.rep.Interrupted {
		mode = RollbackAll
		if last := r.lastPlay(); last != nil && last.Rollback == RollbackNone {
			mode = RollbackNone
		}
	}
	if mode != RollbackAll {
		return
	}
	for bi := len(r.done) - 1; bi >= 0; bi-- {
		var g errgroup.Group
		for _, h := range r.done[bi] {
			hr, t := r.hosts[h.Name], r.tgts[h.Name]
			if t == nil || len(hr.undos) == 0 {
				continue
			}
			g.Go(func() error {
				r.rollback(hr, t)
				return nil
			})
		}
		_ = g.Wait()
	}
}

// lastPlay is the last play that started, or nil.
func (r *run) lastPlay() *Play {
	for i := len(r.rep.Plays) - 1; i >= 0; i-- {
		if r.rep.Plays[i].Ran {
			return r.plan.Plays[i].Play
		}
	}
	return nil
}

// describeState says in words what state the host is left in, from the
// typed outcomes of its steps.
func (r *run) describeState(hr *HostReport) string {
	if hr.Status == StatusUnreachable {
		return "unchanged: kplay could not log in, so nothing ran"
	}
	var changed, rolled, undoFailed, kept []string
	failedStep, failedRolled := "", false
	for _, s := range hr.Steps {
		switch {
		case s.rb == rbFailed:
			undoFailed = append(undoFailed, s.Name)
		case s.rb == rbRestoredByStep || s.rb == rbDone:
			rolled = append(rolled, s.Name)
		case s.rb == rbKept:
			kept = append(kept, fmt.Sprintf("%q (%s)", s.Name, strings.TrimPrefix(s.Rollback, "not rolled back on purpose: ")))
		case s.Changed:
			changed = append(changed, s.Name)
		}
		if s.Status == StatusFailed {
			failedStep, failedRolled = s.Name, s.rb == rbRestoredByStep || s.rb == rbDone
		}
	}
	var parts []string
	if len(undoFailed) > 0 {
		parts = append(parts, "NEEDS ATTENTION: rollback failed for "+quoteList(undoFailed)+"; see restore")
	}
	if len(rolled) > 0 {
		parts = append(parts, "rolled back "+quoteList(rolled))
	}
	if len(kept) > 0 {
		parts = append(parts, "kept on purpose "+strings.Join(kept, ", "))
	}
	if len(changed) > 0 {
		parts = append(parts, "changed by "+quoteList(changed))
	}
	if failedStep != "" && !failedRolled {
		parts = append(parts, fmt.Sprintf("step %q failed (a failed step's own partial change is undone by the step where it can; check its error)", failedStep))
	}
	if len(parts) == 0 {
		return "unchanged"
	}
	return strings.Join(parts, "; ")
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
