package runner

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sync/errgroup"

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
	// Events, if set, receives the run's events as they happen (a run log).
	Events EventSink
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
	forks int
	rep   *Report
	hosts map[string]*HostReport
	conns map[string]Conn
	tgts  map[string]*steps.Target
	// dialErrs and locks are filled by lockHosts before the first play.
	dialErrs map[string]error
	locks    map[string]*hostLock
	// done lists the batches that ran, of every play, in order: the final
	// rollback undoes them latest first.
	done [][]*HostSpec
	// failMode is RollbackAll when a host failed in a play whose rollback
	// mode is all.
	failMode RollbackMode
	// stopped is set when failures exceeded a play's max_fail.
	stopped bool

	mu   sync.Mutex
	once map[[2]int]string // (play, step) -> host that claimed a run_once step
	merr *multierror.Error
}

// Run executes the plan: its plays in order, each play's batches in order,
// a play starting only when the one before it has finished everywhere. It
// returns the report and the aggregated host errors (nil when every host
// succeeded). ctx cancellation (an interrupt) stops new steps, cancels
// running commands and rolls back changed hosts.
func Run(ctx context.Context, plan *Plan, opts Options) (*Report, error) {
	if opts.Dial == nil {
		return nil, errors.New("runner: no dialer")
	}
	r := newRun(plan, withDefaults(opts))
	defer r.closeAll()
	r.emit(Event{Type: EventRunStart, Playbook: plan.Playbook.Name, File: plan.Playbook.File, DryRun: r.opts.DryRun, Hosts: hostNames(plan)})
	locked := true
	if r.opts.Lock != nil && !r.opts.DryRun {
		locked = r.lockHosts(ctx, cmp.Or(r.forks, 50))
	}
	for pi, pp := range plan.Plays {
		if !locked || r.stopped {
			break
		}
		if ctx.Err() != nil {
			r.rep.Interrupted = true
			r.rep.Stopped = fmt.Sprintf("interrupted before %s", pp.Play.Label(pi))
			break
		}
		r.rep.Plays[pi].Ran = true
		r.runPlay(ctx, pi, pp)
	}
	if ctx.Err() != nil {
		r.rep.Interrupted = true
	}
	r.finalRollback()
	r.releaseLocks()
	r.rep.Duration = time.Since(r.rep.Started)
	r.rep.DurationSec = r.rep.Duration.Seconds()
	for _, hr := range r.rep.Hosts {
		hr.tally()
		r.rep.Totals.add(hr.Totals)
	}
	totals := r.rep.Totals
	r.emit(Event{Type: EventRunEnd, Outcome: r.rep.outcome(r.merr.ErrorOrNil() != nil), Totals: &totals, DurationSec: r.rep.DurationSec})
	return r.rep, r.merr.ErrorOrNil()
}

// withDefaults fills the options' zero values.
func withDefaults(opts Options) Options {
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
	return opts
}

// newRun prepares the report: every host of every play, with every step
// it will run, not run yet.
func newRun(plan *Plan, opts Options) *run {
	r := &run{
		plan: plan, opts: opts, forks: opts.Forks,
		hosts: map[string]*HostReport{}, conns: map[string]Conn{}, tgts: map[string]*steps.Target{},
		once: map[[2]int]string{}, dialErrs: map[string]error{}, locks: map[string]*hostLock{},
		rep: &Report{Playbook: plan.Playbook.Name, File: plan.Playbook.File, RunID: opts.RunID, DryRun: opts.DryRun, Started: time.Now(),
			Skipped: plan.Skipped},
	}
	for _, h := range plan.Hosts {
		hr := &HostReport{Name: h.Name, Address: h.Address, Status: StatusNotRun, State: "not contacted", plays: map[int][]*StepReport{}}
		r.hosts[h.Name] = hr
		r.rep.Hosts = append(r.rep.Hosts, hr)
	}
	for pi, pp := range plan.Plays {
		pr := PlayReport{Name: pp.Play.Label(pi), Serial: pp.Play.Serial.String()}
		for bi, batch := range pp.Batches {
			for _, h := range batch {
				pr.Hosts = append(pr.Hosts, h.Name)
				hr := r.hosts[h.Name]
				if hr.Batch == 0 {
					hr.Batch = bi + 1
				}
				for i, se := range pp.Play.Steps {
					sr := &StepReport{Play: pi + 1, Index: i, Name: se.Label(), Type: se.Type, Status: StatusNotRun}
					hr.plays[pi] = append(hr.plays[pi], sr)
					hr.Steps = append(hr.Steps, sr)
				}
			}
		}
		r.rep.Plays = append(r.rep.Plays, pr)
	}
	return r
}

// runPlay runs one play's batches. A play whose failed hosts exceed its
// max_fail starts no further batch, and no later play starts.
func (r *run) runPlay(ctx context.Context, pi int, pp *PlayPlan) {
	forks := r.forks
	if forks <= 0 {
		forks = pp.Play.Forks
	}
	if forks <= 0 {
		forks = 50
	}
	failed := 0
	for bi, batch := range pp.Batches {
		if ctx.Err() != nil {
			r.rep.Interrupted = true
			r.rep.Stopped = fmt.Sprintf("interrupted before batch %d of %s", bi+1, pp.Play.Label(pi))
			return
		}
		if failed > pp.Play.MaxFail {
			break
		}
		var g errgroup.Group
		g.SetLimit(forks)
		for _, h := range batch {
			g.Go(func() error {
				r.runHost(ctx, pi, pp, h)
				return nil
			})
		}
		_ = g.Wait()
		r.done = append(r.done, batch)
		for _, h := range batch {
			if r.hosts[h.Name].Failed() {
				failed++
			}
		}
	}
	if failed > 0 && pp.Play.Rollback == RollbackAll {
		r.failMode = RollbackAll
	}
	if failed > pp.Play.MaxFail {
		r.stopped = true
		r.rep.Stopped = r.stoppedWhy(pi, pp, failed)
	}
}

// stoppedWhy says which batches and plays did not start after failures.
func (r *run) stoppedWhy(pi int, pp *PlayPlan, failed int) string {
	var notRun []string
	ran := 0
	for _, b := range pp.Batches {
		if !r.hosts[b[0].Name].ranPlay(pi) {
			break
		}
		ran++
	}
	if ran < len(pp.Batches) {
		notRun = append(notRun, fmt.Sprintf("batches %d to %d of %s", ran+1, len(pp.Batches), pp.Play.Label(pi)))
	}
	for i := pi + 1; i < len(r.plan.Plays); i++ {
		notRun = append(notRun, r.plan.Plays[i].Play.Label(i))
	}
	if len(r.plan.Plays) == 1 {
		if len(notRun) == 0 {
			return ""
		}
		return fmt.Sprintf("%d host(s) failed, more than max_fail %d: batches %d to %d not started", failed, pp.Play.MaxFail, ran+1, len(pp.Batches))
	}
	msg := fmt.Sprintf("%d host(s) failed in %s, more than max_fail %d", failed, pp.Play.Label(pi), pp.Play.MaxFail)
	if len(notRun) > 0 {
		msg += ": not started: " + strings.Join(notRun, ", ")
	}
	return msg
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

// dial opens h's connection for the run: one that steps can reopen
// (steps.Reconnector) if it is lost.
func (r *run) dial(ctx context.Context, h *HostSpec) (Conn, error) {
	conn, err := r.opts.Dial(ctx, h)
	if err != nil {
		return nil, err
	}
	return newRedialConn(conn, func(ctx context.Context) (Conn, error) { return r.opts.Dial(ctx, h) }), nil
}

// target returns the host's connection as a step target, dialing it on
// first use; later plays reuse the connection and the host's facts.
func (r *run) target(ctx context.Context, h *HostSpec) (*steps.Target, error) {
	r.mu.Lock()
	t, conn, err := r.tgts[h.Name], r.conns[h.Name], r.dialErrs[h.Name]
	r.mu.Unlock()
	if t != nil || err != nil {
		return t, err
	}
	if conn == nil {
		if conn, err = r.dial(ctx, h); err != nil {
			r.mu.Lock()
			r.dialErrs[h.Name] = err
			r.mu.Unlock()
			return nil, err
		}
	}
	t = steps.NewTarget(conn, r.opts.RunID)
	r.mu.Lock()
	r.conns[h.Name], r.tgts[h.Name] = conn, t
	r.mu.Unlock()
	return t, nil
}

// runHost runs one host's steps of one play in order, and rolls the host
// back if a step fails (as the play's rollback mode says).
func (r *run) runHost(ctx context.Context, pi int, pp *PlayPlan, h *HostSpec) {
	hr := r.hosts[h.Name]
	if hr.err != nil {
		return // failed in an earlier play: later plays skip it, as Ansible does
	}
	t, err := r.target(ctx, h)
	if err != nil {
		hr.Status = StatusUnreachable
		hr.err = fmt.Errorf("%s: %w", h.Name, err)
		if ctx.Err() != nil {
			hr.err = fmt.Errorf("%s: interrupted while connecting: %w", h.Name, err)
		}
		hr.Error = err.Error()
		r.hostErr(hr.err)
		hr.State = r.describeState(hr)
		r.emit(Event{Type: EventHostError, Host: h.Name, Error: hr.Error})
		return
	}
	if hr.Status == StatusNotRun {
		hr.Status = StatusOK
	}
	for i, st := range pp.Steps[h.Name] {
		se, sr := pp.Play.Steps[i], hr.plays[pi][i]
		if ctx.Err() != nil {
			hr.err = fmt.Errorf("%s: interrupted before step %q", h.Name, se.Label())
			hr.Error = "interrupted"
			r.hostErr(hr.err)
			break
		}
		if owner, taken := r.claimOnce(pi, i, se, st, h.Name); taken {
			sr.Status = StatusSkipped
			sr.Message = "run_once: runs on " + owner
			r.notify(hr, sr)
			continue
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
	if hr.err != nil && ctx.Err() == nil && pp.Play.Rollback != RollbackNone {
		r.rollback(hr, t)
	}
}

// claimOnce decides whether a run_once step is already taken by another
// host, and by which; the first host to ask claims it.
func (r *run) claimOnce(pi, i int, se *StepEntry, st steps.Step, host string) (string, bool) {
	if !runOnce(se, st) {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if owner, taken := r.once[[2]int{pi, i}]; taken {
		return owner, true
	}
	r.once[[2]int{pi, i}] = host
	return "", false
}

// runOnce decides whether step se runs on one host only.
func runOnce(se *StepEntry, st steps.Step) bool {
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
	r.stepEvent(EventStepStart, hr, sr)
	defer func() {
		sr.Duration = time.Since(start)
		sr.DurationSec = sr.Duration.Seconds()
	}()
	if r.opts.DryRun {
		return planStep(ctx, t, st, sr, timeout)
	}
	res, err := applyWithRetries(ctx, t, se, st, sr, timeout)
	if reason, ok := steps.IsSkip(err); ok {
		sr.Status = StatusSkipped
		sr.Message = reason
		return nil
	}
	if err == nil {
		sr.Changed, sr.Message, sr.Details, sr.Data, sr.Output = res.Changed, res.Message, res.Details, res.Data, string(res.Output)
		sr.Status = StatusOK
		if res.Changed {
			sr.Status = StatusChanged
		}
		if res.Undo != nil {
			hr.undos = append(hr.undos, undoEntry{step: sr, undo: res.Undo})
		}
		return nil
	}
	sr.Status = StatusFailed
	sr.Error = err.Error()
	// What the failing step found (for example which certificates failed
	// verification, and why) is reported with its error.
	sr.Details, sr.Data = res.Details, res.Data
	var re *steps.RestoredError
	if errors.As(err, &re) {
		sr.Rollback = "restored by the step: " + re.How
		sr.rb = rbRestoredByStep
	}
	return err
}

// notify reports a finished step to the event sink and to OnStep.
func (r *run) notify(hr *HostReport, sr *StepReport) {
	r.stepEvent(EventStepEnd, hr, sr)
	if r.opts.OnStep != nil {
		r.opts.OnStep(hr, sr)
	}
}
