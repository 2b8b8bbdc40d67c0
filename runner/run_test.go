package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/steps"
)

// events is a concurrency-safe log of what fake steps did.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// fakeParams configure a fake step.
type fakeParams struct {
	ID        string        `yaml:"id"`
	FailOn    string        `yaml:"fail_on"`    // host name on which Apply fails
	FailTimes int           `yaml:"fail_times"` // fail this many attempts, then succeed
	Undo      bool          `yaml:"undo"`
	UndoFail  bool          `yaml:"undo_fail"`
	UndoKeep  bool          `yaml:"undo_keep"` // the undo declines on purpose (steps.KeptError)
	Block     bool          `yaml:"block"`     // Apply waits for ctx
	Sleep     time.Duration `yaml:"sleep"`
}

type fakeStep struct {
	p   fakeParams
	ev  *events
	mu  sync.Mutex
	try int
}

func (f *fakeStep) Plan(ctx context.Context, t *steps.Target) (steps.Plan, error) {
	f.ev.add("plan " + t.Name() + " " + f.p.ID)
	return steps.Plan{Summary: "would " + f.p.ID, WouldChange: true}, nil
}

func (f *fakeStep) Apply(ctx context.Context, t *steps.Target) (steps.Result, error) {
	f.mu.Lock()
	f.try++
	try := f.try
	f.mu.Unlock()
	f.ev.add("apply " + t.Name() + " " + f.p.ID)
	if f.p.Sleep > 0 {
		time.Sleep(f.p.Sleep)
	}
	if f.p.Block {
		<-ctx.Done()
		return steps.Result{}, ctx.Err()
	}
	if f.p.FailOn == t.Name() {
		return steps.Result{Details: []string{"why " + f.p.ID}, Data: f.p.ID}, errors.New("boom")
	}
	if try <= f.p.FailTimes {
		return steps.Result{}, fmt.Errorf("transient %d", try)
	}
	r := steps.Result{Changed: true, Message: "did " + f.p.ID}
	if f.p.Undo {
		id, fail, keep := f.p.ID, f.p.UndoFail, f.p.UndoKeep
		r.Undo = &steps.Undo{Desc: "undo " + id, Restore: "restore " + id, Fn: func(ctx context.Context, t *steps.Target) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if keep {
				f.ev.add("keep " + t.Name() + " " + id)
				return steps.Keep("undoing %s would make it worse", id)
			}
			f.ev.add("undo " + t.Name() + " " + id)
			if fail {
				return errors.New("undo broke")
			}
			return nil
		}}
	}
	return r, nil
}

// fakeConn is a host that runs nothing.
type fakeConn struct{ name string }

func (c *fakeConn) Name() string    { return c.name }
func (c *fakeConn) Address() string { return "192.0.2.99" }
func (c *fakeConn) Run(ctx context.Context, cmd string) ([]byte, error) {
	return nil, nil
}
func (c *fakeConn) RunInput(ctx context.Context, cmd string, in []byte) ([]byte, error) {
	return nil, nil
}
func (c *fakeConn) ReadFile(ctx context.Context, p string) ([]byte, error) {
	return nil, fs.ErrNotExist
}
func (c *fakeConn) WriteFile(ctx context.Context, p string, d []byte, m fs.FileMode) error {
	return nil
}
func (c *fakeConn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errors.New("fakeConn: no network")
}
func (c *fakeConn) Close() error { return nil }

// fakeRun compiles and runs playbook src on hosts h1..hN with fake steps.
func fakeRun(t *testing.T, ctx context.Context, n int, src string, unreachable ...string) (*Report, []string, error) {
	t.Helper()
	return fakeRunWith(t, ctx, n, src, Options{RunID: "test"}, unreachable...)
}

// fakeRunWith is fakeRun with options (its Dial is replaced).
func fakeRunWith(t *testing.T, ctx context.Context, n int, src string, opts Options, unreachable ...string) (*Report, []string, error) {
	t.Helper()
	ev := &events{}
	reg := steps.Registry{"fake": func(node *yaml.Node, x steps.Expander) (steps.Step, error) {
		s := &fakeStep{ev: ev}
		if err := yamlx.Decode(node, &s.p, "fake"); err != nil {
			return nil, err
		}
		return s, nil
	}}
	var b strings.Builder
	b.WriteString("hosts:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  h%d: {}\n", i)
	}
	inv, err := ParseInventory("inv.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := ParsePlaybook("pb.yaml", []byte(src), reg)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(pb, inv, CompileOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context, h *HostSpec) (Conn, error) {
		if slices.Contains(unreachable, h.Name) {
			return nil, errors.New("connect: no route to host")
		}
		ev.add("dial " + h.Name)
		return &fakeConn{name: h.Name}, nil
	}
	opts.Dial = dial
	rep, runErr := Run(ctx, plan, opts)
	return rep, ev.all(), runErr
}

func filter(log []string, prefix string) []string {
	var out []string
	for _, l := range log {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func hostStatus(rep *Report) string {
	var s []string
	for _, h := range rep.Hosts {
		s = append(s, h.Name+"="+string(h.Status))
	}
	return strings.Join(s, " ")
}

func TestRunRollbackHostReverseOrder(t *testing.T) {
	rep, log, err := fakeRun(t, context.Background(), 2, `
hosts: all
steps:
  - fake: {id: a, undo: true}
  - fake: {id: b, undo: true}
  - fake: {id: c, fail_on: h2}
  - fake: {id: d}
`)
	if err == nil || !strings.Contains(err.Error(), `h2: step "fake": boom`) {
		t.Fatalf("err = %v", err)
	}
	if got, want := filter(log, "undo"), []string{"undo h2 b", "undo h2 a"}; !slices.Equal(got, want) {
		t.Errorf("undos = %v, want %v (reverse order, failed host only)", got, want)
	}
	if got := hostStatus(rep); got != "h1=changed h2=failed" {
		t.Errorf("status = %s", got)
	}
	h2 := rep.Hosts[1]
	if h2.Steps[0].Status != StatusRolledBack || h2.Steps[3].Status != StatusNotRun || h2.Steps[2].Status != StatusFailed {
		t.Errorf("h2 steps: %s %s %s", h2.Steps[0].Status, h2.Steps[2].Status, h2.Steps[3].Status)
	}
	if !strings.Contains(h2.State, `rolled back "fake"`) {
		t.Errorf("h2 state = %q", h2.State)
	}
	if slices.Contains(log, "apply h2 d") {
		t.Error("a step ran after its host failed")
	}
	if !slices.Contains(log, "apply h1 d") {
		t.Error("h2's failure stopped h1")
	}
}

func TestRunRollbackAllReverseBatches(t *testing.T) {
	_, log, err := fakeRun(t, context.Background(), 3, `
hosts: all
serial: 1
max_fail: 5
rollback: all
steps:
  - fake: {id: a, undo: true}
  - fake: {id: b, fail_on: h3, undo: true}
`)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{"undo h3 a", "undo h2 b", "undo h2 a", "undo h1 b", "undo h1 a"}
	if got := filter(log, "undo"); !slices.Equal(got, want) {
		t.Errorf("undos = %v, want %v", got, want)
	}
}

func TestRunMaxFailStopsBatches(t *testing.T) {
	rep, log, _ := fakeRun(t, context.Background(), 3, `
hosts: all
serial: 1
steps:
  - fake: {id: a, fail_on: h1}
`)
	if slices.Contains(log, "dial h2") || slices.Contains(log, "dial h3") {
		t.Errorf("a batch started after max_fail was exceeded: %v", log)
	}
	if got := hostStatus(rep); got != "h1=failed h2=not run h3=not run" {
		t.Errorf("status = %s", got)
	}
	if !strings.Contains(rep.Stopped, "max_fail 0") {
		t.Errorf("stopped = %q", rep.Stopped)
	}
}

func TestRunMaxFailTolerates(t *testing.T) {
	rep, _, _ := fakeRun(t, context.Background(), 3, `
hosts: all
serial: 1
max_fail: 1
steps:
  - fake: {id: a, fail_on: h1}
`)
	if got := hostStatus(rep); got != "h1=failed h2=changed h3=changed" {
		t.Errorf("status = %s", got)
	}
}

func TestRunRetries(t *testing.T) {
	rep, log, err := fakeRun(t, context.Background(), 1, `
hosts: all
steps:
  - fake: {id: a, fail_times: 2}
    retries: 2
    delay: 1ms
`)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(filter(log, "apply h1 a")); n != 3 {
		t.Errorf("attempts = %d, want 3", n)
	}
	if rep.Hosts[0].Steps[0].Attempts != 3 {
		t.Errorf("reported attempts = %d", rep.Hosts[0].Steps[0].Attempts)
	}
}

func TestRunFailedStepKeepsDetails(t *testing.T) {
	rep, _, err := fakeRun(t, context.Background(), 1, `
hosts: all
steps:
  - fake: {id: a, fail_on: h1}
`)
	if err == nil {
		t.Fatal("want the step's error")
	}
	sr := rep.Hosts[0].Steps[0]
	if sr.Status != StatusFailed || !slices.Equal(sr.Details, []string{"why a"}) || sr.Data != "a" {
		t.Errorf("failed step: status %s, details %q, data %v; want failed, [why a], a", sr.Status, sr.Details, sr.Data)
	}
}

func TestRunRetriesExhausted(t *testing.T) {
	_, log, err := fakeRun(t, context.Background(), 1, `
hosts: all
steps:
  - fake: {id: a, fail_times: 5}
    retries: 1
`)
	if err == nil || !strings.Contains(err.Error(), "transient 2") {
		t.Fatalf("err = %v", err)
	}
	if n := len(filter(log, "apply")); n != 2 {
		t.Errorf("attempts = %d, want 2", n)
	}
}

func TestRunOnce(t *testing.T) {
	rep, log, err := fakeRun(t, context.Background(), 3, `
hosts: all
serial: 1
steps:
  - fake: {id: a}
    run_once: true
  - fake: {id: b}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := filter(log, "apply"); !slices.Equal(got, []string{"apply h1 a", "apply h1 b", "apply h2 b", "apply h3 b"}) {
		t.Errorf("applies = %v", got)
	}
	if s := rep.Hosts[2].Steps[0]; s.Status != StatusSkipped || !strings.Contains(s.Message, "runs on h1") {
		t.Errorf("h3 step a = %s %q", s.Status, s.Message)
	}
}

func TestRunDryRunNeverApplies(t *testing.T) {
	rep, log, err := func() (*Report, []string, error) {
		ev := &events{}
		reg := steps.Registry{"fake": func(node *yaml.Node, x steps.Expander) (steps.Step, error) {
			s := &fakeStep{ev: ev}
			return s, yamlx.Decode(node, &s.p, "fake")
		}}
		inv, _ := ParseInventory("inv.yaml", []byte("hosts:\n  h1: {}\n  h2: {}\n"))
		pb, err := ParsePlaybook("pb.yaml", []byte("hosts: all\nsteps:\n  - fake: {id: a, undo: true}\n  - fake: {id: b, fail_on: h1}\n"), reg)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := Compile(pb, inv, CompileOptions{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), plan, Options{DryRun: true, RunID: "t", Dial: func(ctx context.Context, h *HostSpec) (Conn, error) { return &fakeConn{name: h.Name}, nil }})
		return rep, ev.all(), err
	}()
	if err != nil {
		t.Fatal(err)
	}
	if a := filter(log, "apply"); len(a) != 0 {
		t.Errorf("dry run applied: %v", a)
	}
	if len(filter(log, "plan")) != 4 {
		t.Errorf("plans = %v", log)
	}
	if s := rep.Hosts[0].Steps[1]; s.Status != StatusPlanned || s.Plan == nil || s.Plan.Summary != "would b" {
		t.Errorf("plan report = %+v", s)
	}
}

func TestRunUnreachableDoesNotStopOthers(t *testing.T) {
	rep, _, err := fakeRun(t, context.Background(), 3, `
hosts: all
steps:
  - fake: {id: a}
`, "h2")
	if err == nil || !strings.Contains(err.Error(), "h2: connect: no route to host") {
		t.Fatalf("err = %v", err)
	}
	if got := hostStatus(rep); got != "h1=changed h2=unreachable h3=changed" {
		t.Errorf("status = %s", got)
	}
	if rep.Totals.Unreachable != 1 || rep.Totals.Changed != 2 {
		t.Errorf("totals = %+v", rep.Totals)
	}
}

func TestRunUndoFailureReported(t *testing.T) {
	rep, _, err := fakeRun(t, context.Background(), 1, `
hosts: all
steps:
  - fake: {id: a, undo: true}
  - fake: {id: b, undo: true, undo_fail: true}
  - fake: {id: c, fail_on: h1}
`)
	if err == nil || !strings.Contains(err.Error(), "undo broke") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v; want both the step error and the undo error", err)
	}
	h := rep.Hosts[0]
	if !strings.Contains(h.State, "NEEDS ATTENTION") || len(h.Restore) != 1 || !strings.Contains(h.Restore[0], "restore b") {
		t.Errorf("state = %q restore = %v", h.State, h.Restore)
	}
	if h.Steps[0].Status != StatusRolledBack {
		t.Errorf("the undo of a must still run after b's undo failed: %s", h.Steps[0].Status)
	}
}

func TestRunInterruptRollsBackChangedHosts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	rep, log, err := fakeRun(t, ctx, 2, `
hosts: all
rollback: host
steps:
  - fake: {id: a, undo: true}
  - fake: {id: b, block: true}
  - fake: {id: c}
`)
	if err == nil {
		t.Fatal("no error")
	}
	if !rep.Interrupted {
		t.Error("not marked interrupted")
	}
	undos := filter(log, "undo")
	slices.Sort(undos)
	if !slices.Equal(undos, []string{"undo h1 a", "undo h2 a"}) {
		t.Errorf("undos = %v", undos)
	}
	if len(filter(log, "apply h1 c")) != 0 {
		t.Error("a step started after the interrupt")
	}
}

func TestRunForksBound(t *testing.T) {
	ev := &events{}
	var mu sync.Mutex
	cur, peak := 0, 0
	reg := steps.Registry{"fake": func(node *yaml.Node, x steps.Expander) (steps.Step, error) {
		return stepFunc(func(ctx context.Context, t *steps.Target) (steps.Result, error) {
			mu.Lock()
			cur++
			peak = max(peak, cur)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			cur--
			mu.Unlock()
			ev.add("x")
			return steps.Result{}, nil
		}), nil
	}}
	inv, _ := ParseInventory("inv.yaml", []byte("hosts:\n  a: {}\n  b: {}\n  c: {}\n  d: {}\n  e: {}\n  f: {}\n"))
	pb, _ := ParsePlaybook("pb.yaml", []byte("hosts: all\nforks: 2\nsteps: [{fake: {}}]\n"), reg)
	plan, err := Compile(pb, inv, CompileOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), plan, Options{Dial: func(ctx context.Context, h *HostSpec) (Conn, error) { return &fakeConn{name: h.Name}, nil }}); err != nil {
		t.Fatal(err)
	}
	if peak != 2 || len(ev.all()) != 6 {
		t.Errorf("peak concurrency %d (want 2), ran %d", peak, len(ev.all()))
	}
}

type stepFunc func(ctx context.Context, t *steps.Target) (steps.Result, error)

func (f stepFunc) Plan(ctx context.Context, t *steps.Target) (steps.Plan, error) {
	return steps.Plan{}, nil
}
func (f stepFunc) Apply(ctx context.Context, t *steps.Target) (steps.Result, error) {
	return f(ctx, t)
}
