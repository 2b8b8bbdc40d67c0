package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sync/errgroup"

	"github.com/kplay/kplay/remote"
	"github.com/kplay/kplay/steps"
)

// Conn is an open connection to one host.
type Conn interface {
	steps.Host
	// Close closes the connection.
	Close() error
}

// Dialer opens a connection to a host.
type Dialer func(ctx context.Context, h *HostSpec) (Conn, error)

// Options control a run.
type Options struct {
	// DryRun calls only the steps' read-only Plan.
	DryRun bool
	// Forks bounds how many hosts of a batch run at once; 0 means the
	// playbook's forks, or 50.
	Forks int
	// DefaultTimeout is the per-step timeout when a step sets none; 0 means 10m.
	DefaultTimeout time.Duration
	// UndoTimeout bounds each undo; 0 means 5m.
	UndoTimeout time.Duration
	// RunID names this run; empty means a new one.
	RunID string
	// Dial opens connections; required.
	Dial Dialer
	// OnStep, if set, is called as each step finishes, from the host's goroutine.
	OnStep func(h *HostReport, s *StepReport)
	// OnRollback, if set, is called as each undo finishes.
	OnRollback func(h *HostReport, s *StepReport)
	// RollbackCtx bounds all rollbacks (a second interrupt cancels it); nil means none.
	RollbackCtx context.Context
	// Lock, if set, takes the per-host run lock on every host before any
	// change and releases it at the end, after any rollback. Ignored in a
	// dry run, which changes nothing.
	Lock *LockOptions
}

// undoEntry is one applied change that can be reverted.
type undoEntry struct {
	step *StepReport
	undo *steps.Undo
}

// NewRunID returns a sortable, unique run id.
func NewRunID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// run is the state of one execution of a Plan.
type run struct {
	plan  *Plan
	opts  Options
	rep   *Report
	hosts map[string]*HostReport
	conns map[string]Conn
	tgts  map[string]*steps.Target
	// dialErrs and locks are filled by lockHosts before the first batch.
	dialErrs map[string]error
	locks    map[string]*hostLock

	mu   sync.Mutex
	once map[int]string // step index -> host that claimed a run_once step
	merr *multierror.Error
}

// Run executes the plan. It returns the report and the aggregated host errors
// (nil when every host succeeded). ctx cancellation (an interrupt) stops new
// steps, cancels running commands and rolls back changed hosts.
func Run(ctx context.Context, plan *Plan, opts Options) (*Report, error) {
	if opts.Dial == nil {
		return nil, errors.New("runner: no dialer")
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 10 * time.Minute
	}
	if opts.UndoTimeout <= 0 {
		opts.UndoTimeout = 5 * time.Minute
	}
	if opts.RunID == "" {
		opts.RunID = NewRunID(time.Now())
	}
	if opts.RollbackCtx == nil {
		opts.RollbackCtx = context.Background()
	}
	forks := opts.Forks
	if forks <= 0 {
		forks = plan.Playbook.Forks
	}
	if forks <= 0 {
		forks = 50
	}
	r := &run{
		plan:  plan,
		opts:  opts,
		hosts: map[string]*HostReport{},
		conns: map[string]Conn{},
		tgts:  map[string]*steps.Target{},
		once:  map[int]string{},

		dialErrs: map[string]error{},
		locks:    map[string]*hostLock{},
		rep: &Report{
			Playbook: plan.Playbook.Name,
			File:     plan.Playbook.File,
			RunID:    opts.RunID,
			DryRun:   opts.DryRun,
			Started:  time.Now(),
		},
	}
	for bi, batch := range plan.Batches {
		for _, h := range batch {
			hr := &HostReport{Name: h.Name, Address: h.Address, Batch: bi + 1, Status: StatusNotRun, State: "not contacted"}
			for i, se := range plan.Playbook.Steps {
				hr.Steps = append(hr.Steps, &StepReport{Index: i, Name: se.Label(), Type: se.Type, Status: StatusNotRun})
			}
			r.hosts[h.Name] = hr
			r.rep.Hosts = append(r.rep.Hosts, hr)
		}
	}
	defer r.closeAll()

	failed := 0
	var done [][]*HostSpec
	batches := plan.Batches
	if opts.Lock != nil && !opts.DryRun && !r.lockHosts(ctx, forks) {
		batches = nil
	}
	for bi, batch := range batches {
		if ctx.Err() != nil {
			r.rep.Interrupted = true
			r.rep.Stopped = fmt.Sprintf("interrupted before batch %d", bi+1)
			break
		}
		if failed > plan.Playbook.MaxFail {
			r.rep.Stopped = fmt.Sprintf("%d host(s) failed, more than max_fail %d: batches %d to %d not started", failed, plan.Playbook.MaxFail, bi+1, len(plan.Batches))
			break
		}
		var g errgroup.Group
		g.SetLimit(forks)
		for _, h := range batch {
			g.Go(func() error {
				r.runHost(ctx, h)
				return nil
			})
		}
		_ = g.Wait()
		done = append(done, batch)
		for _, h := range batch {
			if r.hosts[h.Name].Failed() {
				failed++
			}
		}
	}
	if ctx.Err() != nil {
		r.rep.Interrupted = true
	}
	r.finalRollback(done, failed)
	r.releaseLocks()
	r.rep.Duration = time.Since(r.rep.Started)
	r.rep.DurationSec = r.rep.Duration.Seconds()
	for _, hr := range r.rep.Hosts {
		hr.tally()
		r.rep.Totals.add(hr.Totals)
	}
	return r.rep, r.merr.ErrorOrNil()
}

// closeAll closes every open connection.
func (r *run) closeAll() {
	for _, c := range r.conns {
		_ = c.Close()
	}
}

func (r *run) hostErr(err error) {
	r.mu.Lock()
	r.merr = multierror.Append(r.merr, err)
	r.mu.Unlock()
}

// runHost runs one host's steps in order, and rolls the host back if a step
// fails (unless rollback is none).
func (r *run) runHost(ctx context.Context, h *HostSpec) {
	hr := r.hosts[h.Name]
	r.mu.Lock()
	conn, err := r.conns[h.Name], r.dialErrs[h.Name]
	r.mu.Unlock()
	if conn == nil && err == nil {
		conn, err = r.opts.Dial(ctx, h)
	}
	if err != nil {
		hr.Status = StatusUnreachable
		hr.err = fmt.Errorf("%s: %w", h.Name, err)
		if ctx.Err() != nil {
			hr.err = fmt.Errorf("%s: interrupted while connecting: %w", h.Name, err)
		}
		hr.Error = err.Error()
		hr.State = "unchanged: kplay could not log in, so nothing ran"
		r.hostErr(hr.err)
		return
	}
	r.mu.Lock()
	r.conns[h.Name] = conn
	r.mu.Unlock()
	t := steps.NewTarget(conn, r.opts.RunID)
	r.mu.Lock()
	r.tgts[h.Name] = t
	r.mu.Unlock()
	hr.Status = StatusOK
	hr.State = "unchanged"

	for i, st := range r.plan.Steps[h.Name] {
		se := r.plan.Playbook.Steps[i]
		sr := hr.Steps[i]
		if ctx.Err() != nil {
			hr.err = fmt.Errorf("%s: interrupted before step %q", h.Name, se.Label())
			hr.Error = "interrupted"
			r.hostErr(hr.err)
			break
		}
		if r.runOnce(se, st) {
			r.mu.Lock()
			owner, taken := r.once[i]
			if !taken {
				r.once[i] = h.Name
			}
			r.mu.Unlock()
			if taken {
				sr.Status = StatusSkipped
				sr.Message = "run_once: runs on " + owner
				r.notify(hr, sr)
				continue
			}
		}
		err := r.runStep(ctx, t, se, st, hr, sr)
		r.notify(hr, sr)
		if err != nil {
			hr.err = fmt.Errorf("%s: step %q: %w", h.Name, se.Label(), err)
			hr.Error = fmt.Sprintf("step %q: %v", se.Label(), err)
			hr.Status = StatusFailed
			r.hostErr(hr.err)
			break
		}
	}
	if hr.err == nil && hr.Changed() {
		hr.Status = StatusChanged
	}
	hr.State = r.describeState(hr)
	if hr.err != nil && ctx.Err() == nil && r.plan.Playbook.Rollback != RollbackNone {
		r.rollback(hr, t)
	}
}

// runOnce decides whether step se runs on one host only.
func (r *run) runOnce(se *StepEntry, st steps.Step) bool {
	if se.RunOnce != nil {
		return *se.RunOnce
	}
	if ro, ok := st.(steps.RunOncer); ok {
		return ro.RunOnce()
	}
	return false
}

// runStep plans or applies one step with its timeout and retries.
func (r *run) runStep(ctx context.Context, t *steps.Target, se *StepEntry, st steps.Step, hr *HostReport, sr *StepReport) error {
	timeout := se.Timeout
	if timeout <= 0 {
		timeout = r.opts.DefaultTimeout
	}
	start := time.Now()
	sr.Started = start.UTC()
	defer func() {
		sr.Duration = time.Since(start)
		sr.DurationSec = sr.Duration.Seconds()
	}()
	if r.opts.DryRun {
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
			sr.Status = StatusFailed
			sr.Error = timeoutErr(sctx, timeout, err).Error()
			return timeoutErr(sctx, timeout, err)
		}
		sr.Status = StatusPlanned
		sr.Plan = &p
		sr.Message = p.Summary
		sr.Details = p.Details
		sr.Data = p.Data
		return nil
	}
	var err error
	var res steps.Result
	for attempt := 0; attempt <= se.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				sr.Status = StatusFailed
				sr.Error = fmt.Sprintf("interrupted while waiting to retry; attempt %d: %v", attempt, err)
				return err
			case <-time.After(se.Delay):
			}
		}
		sr.Attempts = attempt + 1
		sctx, cancel := context.WithTimeout(ctx, timeout)
		res, err = st.Apply(sctx, t)
		err = timeoutErr(sctx, timeout, err)
		cancel()
		if reason, ok := steps.IsSkip(err); ok {
			sr.Status = StatusSkipped
			sr.Message = reason
			return nil
		}
		if err == nil {
			sr.Changed = res.Changed
			sr.Message = res.Message
			sr.Details = res.Details
			sr.Data = res.Data
			sr.Status = StatusOK
			if res.Changed {
				sr.Status = StatusChanged
			}
			if res.Undo != nil {
				hr.undos = append(hr.undos, undoEntry{step: sr, undo: res.Undo})
			}
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	sr.Status = StatusFailed
	sr.Error = err.Error()
	// What the failing step found (for example which certificates failed
	// verification, and why) is reported with its error.
	sr.Details = res.Details
	sr.Data = res.Data
	var re *steps.RestoredError
	if errors.As(err, &re) {
		sr.Rollback = "restored by the step: " + re.How
	}
	return err
}

// timeoutErr says so when a step's own timeout ended it.
func timeoutErr(sctx context.Context, d time.Duration, err error) error {
	if err != nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", d, err)
	}
	return err
}

func (r *run) notify(hr *HostReport, sr *StepReport) {
	if r.opts.OnStep != nil {
		r.opts.OnStep(hr, sr)
	}
}

// rollback runs the host's undos in reverse order, each with a fresh context
// and its own timeout, and records what state the host is left in.
func (r *run) rollback(hr *HostReport, t *steps.Target) {
	if len(hr.undos) == 0 {
		hr.State = r.describeState(hr)
		return
	}
	var merr *multierror.Error
	for i := len(hr.undos) - 1; i >= 0; i-- {
		u := hr.undos[i]
		ctx, cancel := context.WithTimeout(r.opts.RollbackCtx, r.opts.UndoTimeout)
		start := time.Now()
		err := u.undo.Fn(ctx, t)
		cancel()
		if err != nil {
			err = fmt.Errorf("%s: undo of step %q (%s): %w", hr.Name, u.step.Name, u.undo.Desc, err)
			merr = multierror.Append(merr, err)
			u.step.Rollback = "rollback failed: " + err.Error()
			if u.undo.Restore != "" {
				hr.Restore = append(hr.Restore, fmt.Sprintf("step %q: %s", u.step.Name, u.undo.Restore))
			}
		} else {
			u.step.Rollback = fmt.Sprintf("rolled back (%s) in %s", u.undo.Desc, time.Since(start).Round(time.Millisecond))
			u.step.Status = StatusRolledBack
		}
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
	} else if hr.Status != StatusFailed && hr.Status != StatusUnreachable {
		hr.Status = StatusRolledBack
	}
	hr.State = r.describeState(hr)
}

// finalRollback undoes other hosts after the batches: every changed host
// when rollback is all and a host failed, or when the run was interrupted.
// Later batches are undone first; hosts of one batch in parallel.
func (r *run) finalRollback(done [][]*HostSpec, failed int) {
	mode := r.plan.Playbook.Rollback
	if mode == RollbackNone || r.opts.DryRun {
		return
	}
	if !(r.rep.Interrupted || (mode == RollbackAll && failed > 0)) {
		return
	}
	for bi := len(done) - 1; bi >= 0; bi-- {
		var wg sync.WaitGroup
		for _, h := range done[bi] {
			hr := r.hosts[h.Name]
			t := r.tgts[h.Name]
			if t == nil || len(hr.undos) == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.rollback(hr, t)
			}()
		}
		wg.Wait()
	}
}

// describeState says in words what state the host is left in.
func (r *run) describeState(hr *HostReport) string {
	var changed, rolled, undoFailed []string
	for _, s := range hr.Steps {
		switch {
		case strings.HasPrefix(s.Rollback, "rollback failed"):
			undoFailed = append(undoFailed, s.Name)
		case strings.HasPrefix(s.Rollback, "restored by the step"):
			rolled = append(rolled, s.Name)
		case s.Status == StatusRolledBack:
			rolled = append(rolled, s.Name)
		case s.Changed:
			changed = append(changed, s.Name)
		}
	}
	failedStep := ""
	for _, s := range hr.Steps {
		if s.Status == StatusFailed {
			failedStep = s.Name
		}
	}
	var parts []string
	switch {
	case hr.Status == StatusUnreachable:
		return "unchanged: kplay could not log in, so nothing ran"
	case len(undoFailed) > 0:
		parts = append(parts, "NEEDS ATTENTION: rollback failed for "+quoteList(undoFailed)+"; see restore")
	}
	if len(rolled) > 0 {
		parts = append(parts, "rolled back "+quoteList(rolled))
	}
	if len(changed) > 0 {
		parts = append(parts, "changed by "+quoteList(changed))
	}
	if failedStep != "" && !slices.Contains(rolled, failedStep) {
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

// SSHDialer returns a Dialer that opens real SSH connections with remote.
func SSHDialer(acceptNew bool, becomePassword string) Dialer {
	var mu sync.Mutex
	return func(ctx context.Context, h *HostSpec) (Conn, error) {
		return remote.Dial(ctx, remote.Config{
			Name:              h.Name,
			Address:           h.Address,
			Port:              h.Port,
			User:              h.User,
			KeyPath:           h.Key,
			KnownHosts:        h.KnownHosts,
			AcceptNewHostKeys: acceptNew,
			ConnectTimeout:    h.ConnectTimeout,
			Become:            h.Become,
			BecomePassword:    becomePassword,
			KnownHostsMu:      &mu,
		})
	}
}
