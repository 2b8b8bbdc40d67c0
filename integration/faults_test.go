package integration

// Fault injection on real test hosts (issue 4): every test here breaks
// something for real (a dead address, a silent TCP peer, a killed or frozen
// sshd, a hanging command, an interrupt, a second run, a full disk, a
// failing later batch) and asserts what must hold afterwards.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// bgRun is a kplay process running in the background.
type bgRun struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	errb *syncBuffer
	done chan struct{}
	res  result
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startKplay starts kplay in the background; wait collects it.
func startKplay(t *testing.T, env []string, args ...string) *bgRun {
	t.Helper()
	cmd := exec.Command(kplay.path, args...)
	cmd.Env = append(os.Environ(), env...)
	b := &bgRun{cmd: cmd, out: &syncBuffer{}, errb: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.out, b.errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		b.res = result{stdout: b.out.String(), stderr: b.errb.String(), code: cmd.ProcessState.ExitCode(), took: time.Since(start)}
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// wait waits at most d for kplay to exit.
func (b *bgRun) wait(t *testing.T, d time.Duration) result {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(d):
		_ = b.cmd.Process.Kill()
		<-b.done
		t.Fatalf("kplay did not exit within %s\nstdout:\n%s\nstderr:\n%s", d, b.out.String(), b.errb.String())
	}
	t.Logf("background kplay %s -> exit %d in %s\nstdout:\n%s\nstderr:\n%s", strings.Join(b.cmd.Args[1:], " "),
		b.res.code, b.res.took.Round(time.Millisecond), b.res.stdout, b.res.stderr)
	return b.res
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// noProcsLeft asserts that no process whose command line holds substr runs
// on any host.
func noProcsLeft(t *testing.T, hosts []*testbed.Host, substr string) {
	t.Helper()
	for _, h := range hosts {
		if p := hostProcs(t, h, substr); len(p) > 0 {
			t.Errorf("%s: processes of the run left behind: %v", h.Name, p)
		}
	}
}

// TestFaultUnreachableAndTarpit: a dead address and a peer that accepts TCP
// but never sends an SSH banner each fail within connect_timeout + 2s, and
// the other hosts finish normally.
func TestFaultUnreachableAndTarpit(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	// The tarpit listens on the controller's address on the bed's bridge,
	// accepts every connection and never writes a byte.
	ln, err := net.Listen("tcp", net.JoinHostPort(b.Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	port := ln.Addr().(*net.TCPAddr).Port
	const ct = 3 * time.Second
	extra := fmt.Sprintf("  ghost: {address: %s, connect_timeout: 3s}\n  tarpit: {address: %s, port: %d, connect_timeout: 3s}\n", b.UnusedAddress(), b.Gateway, port)
	inv := inventory(t, b, "", extra)
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: {cmd: touch /tmp/ran, undo: rm -f /tmp/ran}\n")
	r := run(t, nil, "run", pb, "-i", inv, "--output", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if r.took > ct+2*time.Second {
		t.Errorf("run took %s; the unreachable and tarpit hosts must fail within connect_timeout %s + 2s", r.took, ct)
	}
	rep := decodeReport(t, r.stdout)
	g := rep.host(t, "ghost")
	if g.Status != "unreachable" || !strings.Contains(g.Error, "connect") {
		t.Errorf("ghost = %s %q", g.Status, g.Error)
	}
	tp := rep.host(t, "tarpit")
	if tp.Status != "unreachable" || !strings.Contains(tp.Error, "no SSH handshake within connect_timeout 3s") {
		t.Errorf("tarpit = %s %q; want a bounded handshake", tp.Status, tp.Error)
	}
	mu.Lock()
	n := len(held)
	mu.Unlock()
	if n == 0 {
		t.Error("the tarpit saw no connection: the test did not test the handshake bound")
	}
	for _, h := range b.Hosts {
		if s := rep.host(t, h.Name).Status; s != "changed" || !exists(h.Path("/tmp/ran")) {
			t.Errorf("%s = %s; the reachable hosts must finish normally", h.Name, s)
		}
	}
}

// TestFaultHangingStepKilled: a step that outlives its timeout is killed on
// the host with everything it started, including children that left its
// process group or session (background, nohup, setsid, double fork).
func TestFaultHangingStepKilled(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "pb.yaml", `
hosts: all
steps:
  - name: change
    shell: {cmd: touch /tmp/changed, undo: rm -f /tmp/changed}
  - name: hang
    timeout: 2s
    shell: |
      sleep 1001 &
      nohup sleep 1002 >/dev/null 2>&1 &
      setsid sleep 1003 &
      (sleep 1004 &)
      setsid sh -c 'trap "" HUP TERM; sleep 1005' &
      sleep 1006
`)
	r := run(t, nil, "run", pb, "-i", inv, "--output", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	// The commands would run for 1001 s and more: a run that ends within a
	// minute was cut off. The connecting before it is not the step's: on a
	// loaded machine it alone can take seconds, so the step's own time is
	// what must stay near its timeout.
	if r.took > time.Minute {
		t.Errorf("run took %s with a 2s step timeout", r.took)
	}
	rep := decodeReport(t, r.stdout)
	for _, h := range b.Hosts {
		hj := rep.host(t, h.Name)
		for _, s := range hj.Steps {
			if s.Name == "hang" && s.DurationSec > (2*time.Second+5*time.Second).Seconds() {
				t.Errorf("%s: the hanging step took %.1fs with a 2s timeout", h.Name, s.DurationSec)
			}
		}
		if hj.Status != "failed" || !strings.Contains(hj.Error, "timed out after 2s") || !strings.Contains(hj.Error, "killed") {
			t.Errorf("%s = %s %q; want a timeout that says the processes were killed", h.Name, hj.Status, hj.Error)
		}
		if exists(h.Path("/tmp/changed")) {
			t.Errorf("%s: the change before the hanging step was not rolled back", h.Name)
		}
	}
	noProcsLeft(t, b.Hosts, "sleep 100")
}

// TestFaultInterrupt: SIGINT at a step boundary (no command running: the
// runner waits between attempts of a retried step) and in the middle of a
// step whose command spawned setsid/nohup children. Exit 130, every changed
// host rolled back, no later step started, no process of the run left on
// any host 5 s later.
func TestFaultInterrupt(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	inv := inventory(t, b, "", "")
	cases := []struct {
		name, step string
		// ready says the run is where the interrupt must land.
		ready func(h *testbed.Host) bool
	}{
		{"step boundary", `
  - name: wait for go
    retries: 100
    delay: 30s
    shell: touch /tmp/attempted; test -e /tmp/go
`, func(h *testbed.Host) bool {
			// The attempt has failed and its process is gone: kplay is
			// between attempts, nothing of the run runs on the host.
			return exists(h.Path("/tmp/attempted")) && len(hostProcs(t, h, "/tmp/go")) == 0
		}},
		{"mid-step", `
  - name: hang
    shell: |
      nohup sleep 2001 >/dev/null 2>&1 &
      setsid sleep 2002 &
      touch /tmp/attempted
      sleep 2003
`, func(h *testbed.Host) bool {
			return exists(h.Path("/tmp/attempted")) && len(hostProcs(t, h, "sleep 2003")) > 0
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, h := range b.Hosts {
				_ = os.Remove(h.Path("/tmp/attempted"))
			}
			pb := writeFile(t, "pb.yaml", `
hosts: all
steps:
  - name: change
    shell: {cmd: touch /tmp/changed, undo: rm -f /tmp/changed}`+c.step+`
  - name: after
    shell: touch /tmp/after
`)
			bg := startKplay(t, nil, "run", pb, "-i", inv, "--output", "json")
			waitFor(t, 30*time.Second, "the interrupt point on every host", func() bool {
				for _, h := range b.Hosts {
					if !c.ready(h) {
						return false
					}
				}
				return true
			})
			time.Sleep(200 * time.Millisecond)
			_ = bg.cmd.Process.Signal(syscall.SIGINT)
			r := bg.wait(t, 30*time.Second)
			if r.code != 130 {
				t.Errorf("exit %d, want 130", r.code)
			}
			rep := decodeReport(t, r.stdout)
			if !rep.Interrupted {
				t.Error("report does not say interrupted")
			}
			for _, h := range b.Hosts {
				if exists(h.Path("/tmp/changed")) {
					t.Errorf("%s: change not rolled back", h.Name)
				}
				if exists(h.Path("/tmp/after")) {
					t.Errorf("%s: a step started after the interrupt", h.Name)
				}
				if s := rep.host(t, h.Name).Steps[0].Status; s != "rolled back" {
					t.Errorf("%s: first step %q, want rolled back", h.Name, s)
				}
				if exists(h.Path("/var/lib/kplay/lock")) {
					t.Errorf("%s: run lock not released after the interrupt", h.Name)
				}
			}
			time.Sleep(5 * time.Second)
			noProcsLeft(t, b.Hosts, "sleep 200")
			noProcsLeft(t, b.Hosts, "/tmp/go")
		})
	}
}

// TestFaultTwoRunsAtOnce: a second run refuses hosts a first one is
// changing, naming the holder, and changes nothing anywhere; the lock is
// released at the end; a stale lock (holder gone) is cleared only with
// --break-lock, and a live one never.
func TestFaultTwoRunsAtOnce(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	inv := inventory(t, b, "", "")
	cp1, cp2 := b.Hosts[0], b.Hosts[1]
	first := writeFile(t, "first.yaml", `
name: first
hosts: all
steps:
  - name: change
    shell: {cmd: touch /tmp/first, undo: rm -f /tmp/first}
  - name: hang
    shell: touch /tmp/hanging; sleep 3001
`)
	second := writeFile(t, "second.yaml", `
name: second
hosts: all
steps:
  - shell: {cmd: touch /tmp/second, undo: rm -f /tmp/second}
`)
	lockHolder := func(h *testbed.Host) string {
		b, _ := os.ReadFile(h.Path("/var/lib/kplay/lock/holder"))
		return string(b)
	}
	startFirst := func(t *testing.T) *bgRun {
		for _, h := range b.Hosts {
			_ = os.Remove(h.Path("/tmp/hanging"))
		}
		bg := startKplay(t, nil, "run", first, "-i", inv)
		waitFor(t, 30*time.Second, "the first run to hang on every host", func() bool {
			return exists(cp1.Path("/tmp/hanging")) && exists(cp2.Path("/tmp/hanging"))
		})
		return bg
	}

	t.Run("second run refused", func(t *testing.T) {
		bg := startFirst(t)
		holder := lockHolder(cp2)
		pid := strconv.Itoa(bg.cmd.Process.Pid)
		if !strings.Contains(holder, "pid="+pid+"\n") || !strings.Contains(holder, "playbook=first\n") || !strings.Contains(holder, "run_id=") {
			t.Errorf("lock holder file %q does not name the first run (pid %s)", holder, pid)
		}
		st, err := os.Stat(cp1.Path("/var/lib/kplay/lock"))
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("lock dir: %v, mode %v; want 0700", err, st.Mode().Perm())
		}
		r := run(t, nil, "run", second, "-i", inv, "--output", "json")
		if r.code != 1 {
			t.Errorf("second run: exit %d, want 1", r.code)
		}
		rep := decodeReport(t, r.stdout)
		runID := strings.TrimPrefix(strings.SplitN(holder, "\n", 2)[0], "run_id=")
		for _, h := range b.Hosts {
			hj := rep.host(t, h.Name)
			if hj.Status != "failed" || !strings.Contains(hj.Error, "locked by another kplay run: run "+runID) ||
				!strings.Contains(hj.Error, "pid "+pid) || !strings.Contains(hj.Error, `playbook "first"`) {
				t.Errorf("%s = %s %q; want a refusal naming run %s pid %s", h.Name, hj.Status, hj.Error, runID, pid)
			}
			if exists(h.Path("/tmp/second")) {
				t.Errorf("%s: the refused run changed the host", h.Name)
			}
		}
		if !strings.Contains(rep.Stopped, "no host was changed") {
			t.Errorf("stopped = %q", rep.Stopped)
		}
		// --break-lock never clears a live lock.
		if r := run(t, nil, "run", second, "-i", inv, "--break-lock"); r.code != 1 || !strings.Contains(r.stdout, "holder looks alive") {
			t.Errorf("--break-lock on a live lock: exit %d; want 1 and a refusal", r.code)
		}
		if lockHolder(cp1) != holder || exists(cp1.Path("/tmp/second")) {
			t.Error("--break-lock cleared a live lock")
		}
		// A dry run changes nothing and takes no lock, so it runs.
		if r := run(t, nil, "run", second, "-i", inv, "--dry-run"); r.code != 0 {
			t.Errorf("dry run during another run: exit %d, want 0", r.code)
		}
		_ = bg.cmd.Process.Signal(syscall.SIGINT)
		if r := bg.wait(t, 30*time.Second); r.code != 130 {
			t.Errorf("first run: exit %d, want 130", r.code)
		}
		for _, h := range b.Hosts {
			if exists(h.Path("/var/lib/kplay/lock")) {
				t.Errorf("%s: the first run did not release its lock", h.Name)
			}
		}
		if r := run(t, nil, "run", second, "-i", inv); r.code != 0 {
			t.Errorf("second run after the first ended: exit %d", r.code)
		}
	})

	t.Run("stale lock", func(t *testing.T) {
		for _, h := range b.Hosts {
			_ = os.Remove(h.Path("/tmp/second"))
		}
		bg := startFirst(t)
		pid := bg.cmd.Process.Pid
		_ = bg.cmd.Process.Kill() // SIGKILL: no rollback, no release
		<-bg.done
		for _, h := range b.Hosts {
			if _, err := h.Exec(t.Context(), "pkill", "-f", "sleep 3001"); err != nil {
				t.Logf("%s: pkill: %v", h.Name, err)
			}
		}
		r := run(t, nil, "run", second, "-i", inv)
		if r.code != 1 || !strings.Contains(r.stdout, fmt.Sprintf("its process %d on this controller is gone", pid)) || !strings.Contains(r.stdout, "--break-lock") {
			t.Errorf("exit %d; want 1, the lock called stale and --break-lock suggested", r.code)
		}
		if exists(cp1.Path("/tmp/second")) {
			t.Error("a run changed a locked host")
		}
		if r := run(t, nil, "run", second, "-i", inv, "--break-lock"); r.code != 0 {
			t.Errorf("--break-lock on a stale lock: exit %d, want 0", r.code)
		}
		for _, h := range b.Hosts {
			if !exists(h.Path("/tmp/second")) || exists(h.Path("/var/lib/kplay/lock")) {
				t.Errorf("%s: after --break-lock the run must have run and released its own lock", h.Name)
			}
			_ = os.Remove(h.Path("/tmp/second"))
			_ = os.Remove(h.Path("/tmp/first"))
		}
	})

	t.Run("lock from another controller", func(t *testing.T) {
		dir := cp1.Path("/var/lib/kplay/lock")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		holder := "run_id=20260101T000000Z-abcdef\nplaybook=elsewhere\ncontroller=other-controller\nmachine_id=0123\npid=4242\npid_start=1\nuser=ops\nstarted=2026-01-01T00:00:00Z\n"
		if err := os.WriteFile(dir+"/holder", []byte(holder), 0o600); err != nil {
			t.Fatal(err)
		}
		// A fresh heartbeat: the holder may be alive, so it is never cleared.
		r := run(t, nil, "run", second, "-i", inv, "--break-lock")
		if r.code != 1 || !strings.Contains(r.stdout, "controller other-controller pid 4242 user ops") || !strings.Contains(r.stdout, "holder looks alive") {
			t.Errorf("exit %d; want 1 naming the other controller's run", r.code)
		}
		if exists(cp2.Path("/tmp/second")) || lockHolder(cp1) != holder {
			t.Error("a host was changed or the live lock was cleared")
		}
		// No heartbeat for 5 minutes: stale, cleared with --break-lock.
		old := time.Now().Add(-5 * time.Minute)
		if err := os.Chtimes(dir+"/holder", old, old); err != nil {
			t.Fatal(err)
		}
		if r := run(t, nil, "run", second, "-i", inv); r.code != 1 || !strings.Contains(r.stdout, "no heartbeat for 5m") {
			t.Errorf("exit %d; want 1 calling the lock stale", r.code)
		}
		if r := run(t, nil, "run", second, "-i", inv, "--break-lock"); r.code != 0 {
			t.Errorf("--break-lock on a stale lock: exit %d", r.code)
		}
		if exists(dir) {
			t.Error("lock left after the run")
		}
	})
}

// TestFaultLaterBatchRollsBackAll: serial 1, rollback all, the third batch
// fails: the second and then the first batch are undone (later batches
// first, each host's steps in reverse), as the hosts' own clocks record.
func TestFaultLaterBatchRollsBackAll(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 3})
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "pb.yaml", `
hosts: control_plane
serial: 1
rollback: all
max_fail: 0
steps:
  - name: one
    shell: {cmd: touch /root/one, undo: "rm /root/one && echo one $(date +%s%N) >> /root/undone"}
  - name: two
    shell: {cmd: touch /root/two, undo: "rm /root/two && echo two $(date +%s%N) >> /root/undone"}
  - name: fail on cp3
    shell: test "$(hostname)" != cp3
`)
	r := run(t, nil, "run", pb, "-i", inv, "--output", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	type undo struct {
		step string
		at   int64
	}
	undos := map[string][]undo{}
	for _, h := range b.Hosts {
		for _, f := range []string{"/root/one", "/root/two"} {
			if exists(h.Path(f)) {
				t.Errorf("%s: %s not undone", h.Name, f)
			}
		}
		data, err := os.ReadFile(h.Path("/root/undone"))
		if err != nil {
			t.Fatalf("%s: no undo ran: %v", h.Name, err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			f := strings.Fields(l)
			at, _ := strconv.ParseInt(f[1], 10, 64)
			undos[h.Name] = append(undos[h.Name], undo{f[0], at})
		}
		if u := undos[h.Name]; len(u) != 2 || u[0].step != "two" || u[1].step != "one" {
			t.Errorf("%s: undos %v, want two then one", h.Name, u)
		}
	}
	if !(undos["cp3"][1].at < undos["cp2"][0].at && undos["cp2"][1].at < undos["cp1"][0].at) {
		t.Errorf("batches not undone in reverse order (cp3, cp2, cp1): %v", undos)
	}
	rep := decodeReport(t, r.stdout)
	for _, n := range []string{"cp1", "cp2"} {
		if s := rep.host(t, n).Status; s != "rolled back" {
			t.Errorf("%s status %q, want rolled back", n, s)
		}
	}
}

// TestFaultSSHDDies: sshd killed (connection reset) or frozen (silent peer,
// found only by keepalives) on one host in the middle of a step. That host
// fails well within its step timeout, the others finish, and the report
// says what state the host is in and how to restore it by hand.
func TestFaultSSHDDies(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 3})
	inv := inventory(t, b, "", "")
	cp2 := b.Hosts[1]
	pb := writeFile(t, "pb.yaml", `
hosts: all
steps:
  - name: change
    shell: {cmd: touch /tmp/changed, undo: rm -f /tmp/changed}
  - name: slow on cp2
    timeout: 90s
    shell: if [ "$(hostname)" = cp2 ]; then touch /tmp/slow; sleep 60; fi
`)
	cases := []struct {
		name  string
		fault func(ctx context.Context) error
		heal  func(ctx context.Context) error
		// within bounds the failure: a killed sshd resets the connection at
		// once; a frozen one is found by 3 missed keepalives (5s apart).
		within time.Duration
		want   string
	}{
		{"killed", cp2.KillSSHD, cp2.StartSSHD, 10 * time.Second, "connection lost"},
		{"frozen", func(ctx context.Context) error {
			_, err := cp2.Exec(ctx, "pkill", "-STOP", "-x", "sshd")
			return err
		}, func(ctx context.Context) error {
			_, err := cp2.Exec(ctx, "pkill", "-CONT", "-x", "sshd")
			return err
		}, 30 * time.Second, "no answer to 3 keepalives"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, h := range b.Hosts {
				_ = os.Remove(h.Path("/tmp/slow"))
			}
			bg := startKplay(t, nil, "run", pb, "-i", inv, "--output", "json")
			waitFor(t, 30*time.Second, "the slow step on cp2", func() bool { return exists(cp2.Path("/tmp/slow")) })
			faultAt := time.Now()
			if err := c.fault(t.Context()); err != nil {
				t.Fatal(err)
			}
			r := bg.wait(t, 90*time.Second)
			took := time.Since(faultAt)
			if err := c.heal(t.Context()); err != nil {
				t.Fatal(err)
			}
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if took > c.within {
				t.Errorf("cp2 failed %s after the fault; want within %s (step timeout 90s)", took.Round(time.Millisecond), c.within)
			}
			rep := decodeReport(t, r.stdout)
			h := rep.host(t, "cp2")
			if h.Status != "failed" || !strings.Contains(h.Error, c.want) {
				t.Errorf("cp2 = %s %q; want failed with %q", h.Status, h.Error, c.want)
			}
			// The undo could not run over a dead connection: the report
			// must say the change is still there and how to undo it.
			if !strings.Contains(h.State, "NEEDS ATTENTION") || len(h.Restore) == 0 || !strings.Contains(strings.Join(h.Restore, " "), "rm -f /tmp/changed") {
				t.Errorf("cp2 state %q restore %q; want the unreverted change and its restore command", h.State, h.Restore)
			}
			if !strings.Contains(h.State, "run lock /var/lib/kplay/lock on the host is still held") {
				t.Errorf("cp2 state %q does not say the run lock is left behind", h.State)
			}
			for _, o := range []string{"cp1", "cp3"} {
				if s := rep.host(t, o).Status; s != "changed" {
					t.Errorf("%s = %s; the other hosts must be unaffected", o, s)
				}
			}
			// Clean up for the next case: the stale lock of a dead run is
			// cleared with --break-lock.
			_, _ = cp2.Exec(t.Context(), "pkill", "-f", "sleep 60")
			clean := writeFile(t, "clean.yaml", "hosts: all\nsteps:\n  - shell: rm -f /tmp/changed\n")
			if r := run(t, nil, "run", clean, "-i", inv, "--break-lock"); r.code != 0 {
				t.Errorf("clean-up run with --break-lock: exit %d", r.code)
			}
		})
	}
}

// TestFaultKeepaliveSettings: keepalive_interval and keepalive_count_max
// set how long kplay waits for a host that sends nothing at all. A long
// window keeps a connection whose sshd gets no CPU for longer than the
// default 15 s (a frozen sshd, 22 s: the default gives it up within 20 s,
// see TestFaultSSHDDies); a short one gives a frozen sshd up sooner.
func TestFaultKeepaliveSettings(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	sshd := func(sig string) error {
		_, err := h.Exec(context.Background(), "pkill", "-"+sig, "-x", "sshd")
		return err
	}
	t.Cleanup(func() { _ = sshd("CONT") })
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - name: slow\n    timeout: 90s\n    shell: touch /tmp/slow; sleep 30; echo done\n")
	withKeepalive := func(interval, count string) string {
		inv := inventory(t, b, "", "")
		data, err := os.ReadFile(inv)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(data), "defaults:\n", "defaults:\n  keepalive_interval: "+interval+"\n  keepalive_count_max: "+count+"\n", 1)
		return writeFile(t, "inventory.yaml", s)
	}
	freeze := func(t *testing.T, inv string) (*bgRun, time.Time) {
		_ = os.Remove(h.Path("/tmp/slow"))
		bg := startKplay(t, nil, "run", pb, "-i", inv, "--output", "json", "--break-lock")
		waitFor(t, 30*time.Second, "the slow step", func() bool { return exists(h.Path("/tmp/slow")) })
		at := time.Now()
		if err := sshd("STOP"); err != nil {
			t.Fatal(err)
		}
		return bg, at
	}
	t.Run("long window keeps a stalled host", func(t *testing.T) {
		bg, _ := freeze(t, withKeepalive("5s", "8"))
		time.Sleep(22 * time.Second)
		if err := sshd("CONT"); err != nil {
			t.Fatal(err)
		}
		r := bg.wait(t, 90*time.Second)
		if r.code != 0 {
			t.Fatalf("exit %d, want 0: a 40 s keepalive window must outlast a 22 s stall\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if s := decodeReport(t, r.stdout).host(t, h.Name).Status; s != "changed" {
			t.Errorf("%s = %s, want changed", h.Name, s)
		}
	})
	t.Run("short window gives up sooner", func(t *testing.T) {
		bg, at := freeze(t, withKeepalive("1s", "2"))
		r := bg.wait(t, 90*time.Second)
		took := time.Since(at)
		if err := sshd("CONT"); err != nil {
			t.Fatal(err)
		}
		_, _ = h.Exec(t.Context(), "pkill", "-f", "sleep 30")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		if took > 10*time.Second {
			t.Errorf("the frozen host failed %s after the freeze; want within 10 s with a 2 s window", took.Round(time.Millisecond))
		}
		if hj := decodeReport(t, r.stdout).host(t, h.Name); hj.Status != "failed" || !strings.Contains(hj.Error, "no answer to 2 keepalives in 2s") {
			t.Errorf("%s = %s %q; want failed after 2 keepalives in 2s", h.Name, hj.Status, hj.Error)
		}
	})
}

// hostSh runs a shell script inside h without SSH.
func hostSh(t *testing.T, h *testbed.Host, script string) string {
	t.Helper()
	out, err := h.Exec(t.Context(), "sh", "-c", script)
	if err != nil {
		t.Fatalf("%s: %s: %v", h.Name, script, err)
	}
	return string(out)
}

// renewPlaybook is the shipped renew.yaml with renew_certs using kubeadm
// binary kubeadm, and without the steps after it when short.
func renewPlaybook(t *testing.T, kubeadm string, withBackupStep bool) string {
	t.Helper()
	src, err := os.ReadFile("../playbooks/renew.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(src), "renew_certs: {}", "renew_certs: {kubeadm: "+kubeadm+"}", 1)
	if !withBackupStep {
		s = strings.Replace(s, "    - name: back up\n      backup: {}\n", "", 1)
	}
	if !strings.Contains(s, kubeadm) || (!withBackupStep && strings.Contains(s, "backup: {}")) {
		t.Fatal("could not adapt renew.yaml")
	}
	return writeFile(t, "renew.yaml", s)
}

// TestFaultKube injects faults into certificate renewal on a kubeadm host:
// a disk that fills up during the backup, and sshd dying while kubeadm
// renews.
func TestFaultKube(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true, CertValidity: 48 * time.Hour, KeyAlgorithm: "ECDSA-P256"})
	h := b.Hosts[0]
	env := []string{"HOME=" + t.TempDir()}
	kube := func() map[string]string { return only(snapshot(t, h), "etc/kubernetes") }

	// A tmpfs over /var/lib/kplay (lock and backups) inside the host.
	t.Run("full disk during backup", func(t *testing.T) {
		cases := []struct {
			name, opts string
			backupStep bool
			want       string
		}{
			// Too small: the backup's free-space check refuses before copying.
			{"no room", "size=64k", true, "not enough space for a backup"},
			// Room, but only 12 inodes: cp fails with ENOSPC half way.
			{"fills up while copying", "size=8m,nr_inodes=12", true, "No space left on device"},
			// No backup step: renew_certs takes its own, which fails.
			{"renew_certs' own backup", "size=8m,nr_inodes=12", false, "No space left on device"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				hostSh(t, h, "mkdir -p /var/lib/kplay && mount -t tmpfs -o "+c.opts+",mode=0700 kplay-full /var/lib/kplay")
				t.Cleanup(func() { _, _ = h.Exec(context.Background(), "umount", "/var/lib/kplay") })
				before := kube()
				r := run(t, env, "run", renewPlaybook(t, "kubeadm", c.backupStep), "-i", b.InventoryPath, "--output", "json")
				if r.code != 1 {
					t.Fatalf("exit %d, want 1", r.code)
				}
				if d := diffSnapshots(before, kube()); len(d) > 0 {
					t.Errorf("/etc/kubernetes changed although no backup could be taken: %v", d)
				}
				hj := decodeReport(t, r.stdout).host(t, h.Name)
				if !strings.Contains(hj.Error, c.want) {
					t.Errorf("error %q does not say %q", hj.Error, c.want)
				}
				for _, s := range hj.Steps {
					switch {
					case s.Name == "renew certs" && c.backupStep && s.Status != "not run":
						t.Errorf("renew certs %s after a failed backup; want not run", s.Status)
					case s.Name == "renew certs" && !c.backupStep && (s.Status != "failed" || !strings.Contains(s.Error, "nothing was renewed")):
						t.Errorf("renew certs %s %q; want failed saying nothing was renewed", s.Status, s.Error)
					case s.Name == "back up" && s.Status != "failed":
						t.Errorf("back up %s, want failed", s.Status)
					}
				}
				// No partial backup is left behind, and the lock is released.
				if left := hostSh(t, h, "ls -A /var/lib/kplay/backups 2>/dev/null; ls -d /var/lib/kplay/lock 2>/dev/null; true"); strings.TrimSpace(left) != "" {
					t.Errorf("left in /var/lib/kplay: %q", left)
				}
			})
		}
	})

	t.Run("sshd killed while kubeadm renews", func(t *testing.T) {
		// kubeadm renews for real, then hangs: sshd dies at that point.
		slow := "#!/bin/sh\nkubeadm \"$@\" || exit\ntouch /tmp/renewing\nsleep 120\n"
		if err := os.WriteFile(h.Path("/root/slow-kubeadm"), []byte(slow), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(h.Path("/tmp/renewing"))
		before := kube()
		bg := startKplay(t, env, "run", renewPlaybook(t, "/root/slow-kubeadm", true), "-i", b.InventoryPath, "--output", "json")
		waitFor(t, 60*time.Second, "kubeadm to renew", func() bool { return exists(h.Path("/tmp/renewing")) })
		if d := diffSnapshots(before, kube()); len(d) == 0 {
			t.Fatal("kubeadm renewed nothing: the fault would not leave the host changed")
		}
		killed := time.Now()
		if err := h.KillSSHD(t.Context()); err != nil {
			t.Fatal(err)
		}
		r := bg.wait(t, 60*time.Second)
		if took := time.Since(killed); took > 10*time.Second {
			t.Errorf("kplay took %s after sshd died; renew_certs' step timeout is 5m", took)
		}
		_, _ = h.Exec(t.Context(), "pkill", "-f", "sleep 120")
		if err := h.StartSSHD(t.Context()); err != nil {
			t.Fatal(err)
		}
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		hj := decodeReport(t, r.stdout).host(t, h.Name)
		var bdir string
		for _, s := range hj.Steps {
			if s.Name == "back up" {
				var info struct {
					Dir     string `json:"dir"`
					Restore string `json:"restore"`
				}
				_ = json.Unmarshal(s.Data, &info)
				bdir = info.Dir
			}
		}
		restore := "sh " + bdir + "/restore.sh"
		if bdir == "" || !strings.Contains(hj.Error, bdir) || !strings.Contains(hj.Error, restore) || !strings.Contains(hj.Error, "restore by hand") {
			t.Errorf("error %q does not name the backup %q and the restore command", hj.Error, bdir)
		}
		if !strings.Contains(hj.State, `step "renew certs" failed`) || !strings.Contains(hj.State, "run lock") {
			t.Errorf("state %q does not say renew certs failed and the lock is left", hj.State)
		}
		// The restore command the report names puts the host back, byte for byte.
		if out, err := h.Exec(t.Context(), "sh", bdir+"/restore.sh"); err != nil {
			t.Fatalf("the named restore command failed: %v %s", err, out)
		}
		if d := diffSnapshots(before, kube()); len(d) > 0 {
			t.Errorf("/etc/kubernetes differs after the named restore: %v", d)
		}
		hostSh(t, h, "rm -rf /var/lib/kplay/lock")
	})
}

// TestFaultLockHangs (issue 15, item 4): a host whose run lock cannot be read
// (here its holder file is a FIFO, so reading it blocks, as on a hung file
// system) fails the run within the connect timeout, saying so, with nothing
// changed; it does not hang the run.
func TestFaultLockHangs(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	cp1, cp2 := b.Hosts[0], b.Hosts[1]
	hostSh(t, cp1, "mkdir -p /var/lib/kplay/lock && mkfifo /var/lib/kplay/lock/holder")
	t.Cleanup(func() {
		if out, err := cp1.Exec(context.Background(), "rm", "-rf", "/var/lib/kplay"); err != nil {
			t.Errorf("cleaning up the lock: %v %s", err, out)
		}
	})
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "touch.yaml", "hosts: all\nsteps:\n  - shell: {cmd: touch /tmp/lock-hang, undo: rm -f /tmp/lock-hang}\n")
	r := run(t, nil, "run", pb, "-i", inv, "--timeout", "5m")
	if r.code == 0 || r.took > 60*time.Second {
		t.Fatalf("exit %d after %s; want a failure within the connect timeout (10s)", r.code, r.took.Round(time.Second))
	}
	if !strings.Contains(r.stdout+r.stderr, "no answer within the connect timeout (10s) while kplay took the lock") {
		t.Errorf("the report does not say the lock timed out:\n%s\n%s", r.stdout, r.stderr)
	}
	for _, h := range []*testbed.Host{cp1, cp2} {
		if _, err := os.Stat(h.Path("/tmp/lock-hang")); err == nil {
			t.Errorf("%s was changed although a lock could not be taken", h.Name)
		}
	}
	if procs := hostProcs(t, cp1, "/var/lib/kplay/lock/holder"); len(procs) > 0 {
		t.Errorf("the lock's reader still runs on cp1: %v", procs)
	}
}

// TestFaultInterruptWhileLoading (issue 15, item 5): SIGINT while a large
// inventory loads (400,000 hosts from one range; several seconds here)
// stops kplay at once with exit 130, saying nothing was contacted, instead
// of waiting for the load to end. validate is used: it never contacts a
// host, even if the signal came late.
func TestFaultInterruptWhileLoading(t *testing.T) {
	inv := writeFile(t, "big.ini", "[control_plane]\ncp[000000:399999]\n")
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: \"true\"\n")
	cmd := exec.Command(kplay.path, "validate", pb, "-i", inv)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	sent := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v after %s, want 130\n%s", err, time.Since(start).Round(time.Millisecond), stderr.String())
	}
	if took > 2*time.Second {
		t.Errorf("kplay took %s to stop after SIGINT: it waited for the load", took)
	}
	if !strings.Contains(stderr.String(), "interrupted while loading the inventory and playbook: no host was contacted") {
		t.Errorf("stderr does not say the load was interrupted:\n%s", stderr.String())
	}
}

// TestFaultConnectionLostDuringRestart (issue 15, item 3): the SSH
// connection drops while restart_apiserver has the apiserver's manifest
// moved out, and the host-side script dies with it (SIGKILL: it cannot put
// the manifest back itself). kplay connects again once sshd is back, puts
// the manifest back, and says so; the apiserver runs again.
func TestFaultConnectionLostDuringRestart(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true})
	h := b.Hosts[0]
	manifest := h.Path("/etc/kubernetes/manifests/kube-apiserver.yaml")
	orig, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	api := h.PodPID("kube-apiserver")
	if api == 0 {
		t.Fatal("no kube-apiserver runs")
	}
	// Frozen, the apiserver outlives the kubelet's SIGTERM (until the grace
	// period's SIGKILL): the restart stays in its "moved out" phase long
	// enough to cut the connection there.
	if err := syscall.Kill(api, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(api, syscall.SIGCONT) }()
	pb := writeFile(t, "restart.yaml", "hosts: all\nsteps:\n  - restart_apiserver: {restart: always, components: [kube-apiserver], serve_check: none}\n    timeout: 3m\n")
	done := make(chan result, 1)
	go func() { done <- run(t, nil, "run", pb, "-i", inventory(t, b, "", ""), "--output", "json") }()

	// Wait for the manifest to be moved out, then cut everything.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(manifest); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the manifest was never moved out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, err := h.Exec(context.Background(), "pkill", "-KILL", "-f", "unpark_all"); err != nil {
		t.Fatalf("killing restart_pods.sh on the host: %v %s", err, out)
	}
	if err := h.KillSSHD(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(manifest); !os.IsNotExist(err) {
		t.Fatalf("the manifest is back before kplay could reconnect (%v): the test cut too late", err)
	}
	time.Sleep(3 * time.Second)
	if err := h.StartSSHD(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(api, syscall.SIGCONT)

	r := <-done
	if r.code == 0 {
		t.Errorf("exit 0: a restart whose connection was lost must fail")
	}
	if !strings.Contains(r.stdout, "the SSH connection was lost during the restart; kplay connected again after") ||
		!strings.Contains(r.stdout, "put every manifest back") {
		t.Errorf("the report does not say kplay reconnected and put the manifest back:\n%s", r.stdout)
	}
	got, err := os.ReadFile(manifest)
	if err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("the manifest is not back as it was: %v", err)
	}
	// An apiserver runs from it: a new one if the kubelet noticed the
	// manifest leave and come back, else the old one, which it never stopped
	// (a manifest moved out and back between two of its polls is not seen).
	waitFor(t, 2*time.Minute, "kube-apiserver running", func() bool { return h.PodPID("kube-apiserver") != 0 })
	t.Logf("kube-apiserver pid %d after the restart, %d before", h.PodPID("kube-apiserver"), api)
}

// TestFaultSudoHangs (issue 15, item 4): a host whose sudo never answers
// (here a sudo in /usr/local/bin that sleeps, as a hung PAM or LDAP would)
// fails the become probe within the connect timeout, saying so; the run
// does not hang, and nothing ran on the host.
func TestFaultSudoHangs(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	// /usr/local/bin on the bed's hosts is the bed's bin directory, and
	// comes before /usr/bin in an SSH session's PATH.
	if err := os.WriteFile(filepath.Join(b.Dir, "bin", "sudo"), []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Exec(t.Context(), "sh", "-c", "command -v sudo"); err != nil || strings.TrimSpace(string(out)) != "/usr/local/bin/sudo" {
		t.Fatalf("the hanging sudo is not the one a session finds: %q %v", out, err)
	}
	src, err := os.ReadFile(inventory(t, b, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	inv := writeFile(t, "inventory.yaml", strings.Replace(string(src), "user: root", "user: kplaypw\n  become: true", 1))
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: touch /tmp/sudo-ran\n")
	r := run(t, []string{"KPLAY_BECOME_PASSWORD=whatever"}, "run", pb, "-i", inv, "--timeout", "5m")
	if r.code == 0 || r.took > 60*time.Second {
		t.Fatalf("exit %d after %s; want a failure within the connect timeout (10s)", r.code, r.took.Round(time.Second))
	}
	if !strings.Contains(r.stdout+r.stderr, "sudo gave no answer within the connect timeout (10s)") {
		t.Errorf("the report does not say sudo timed out:\n%s\n%s", r.stdout, r.stderr)
	}
	if exists(h.Path("/tmp/sudo-ran")) {
		t.Error("the step ran although become failed")
	}
}
