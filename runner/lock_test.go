package runner

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHolderRoundTrip(t *testing.T) {
	h := NewHolder("20260101T000000Z-abcdef", "renew\nevil=1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	got := decodeHolder(h.encode())
	if got.RunID != h.RunID || got.PID != h.PID || got.PIDStart != h.PIDStart || got.Controller != h.Controller || !got.Started.Equal(h.Started) {
		t.Errorf("round trip: %+v, want %+v", got, h)
	}
	if got.Playbook != "renew?evil=1" {
		t.Errorf("playbook %q: a newline must not start a new key", got.Playbook)
	}
	if h.PIDStart == "" || h.Controller == "" {
		t.Errorf("holder lacks identity: %+v", h)
	}
}

func TestStaleReason(t *testing.T) {
	self := NewHolder("me", "pb", time.Now())
	// A child that has exited: its pid is gone.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := cmd.Process.Pid
	tests := []struct {
		name  string
		h     Holder
		stale bool
	}{
		{"this process", Holder{Controller: self.Controller, MachineID: self.MachineID, PID: self.PID, PIDStart: self.PIDStart}, false},
		{"pid reused", Holder{Controller: self.Controller, MachineID: self.MachineID, PID: self.PID, PIDStart: "1"}, true},
		{"pid gone", Holder{Controller: self.Controller, MachineID: self.MachineID, PID: gone, PIDStart: "1"}, true},
		{"other controller, fresh", Holder{Controller: "elsewhere", PID: self.PID, Age: 10 * time.Second}, false},
		{"other controller, old", Holder{Controller: "elsewhere", PID: self.PID, Age: 5 * time.Minute}, true},
		{"unknown holder, old", Holder{Age: 5 * time.Minute}, true},
		{"unknown holder, fresh", Holder{}, false},
	}
	for _, tt := range tests {
		if got := staleReason(&tt.h, self, 90*time.Second); (got != "") != tt.stale {
			t.Errorf("%s: stale reason %q, want stale=%v", tt.name, got, tt.stale)
		}
	}
}

// shConn runs commands with the local sh, so the lock scripts run for real
// against a local directory.
type shConn struct{ fakeConn }

func (c *shConn) Run(ctx context.Context, cmd string) ([]byte, error) {
	return c.RunInput(ctx, cmd, nil)
}

func (c *shConn) RunInput(ctx context.Context, cmd string, in []byte) ([]byte, error) {
	x := exec.CommandContext(ctx, "sh", "-c", cmd)
	x.Stdin = strings.NewReader(string(in))
	return x.Output()
}

func TestLockScripts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "kplay", "lock")
	ctx := context.Background()
	c := &shConn{fakeConn{name: "h1"}}
	a := NewHolder("run-a", "pb", time.Now())
	la, err := acquireLock(ctx, c, "h1", LockOptions{Dir: dir, StaleAfter: time.Minute}, a)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("lock dir %v %v, want 0700", st, err)
	}
	// A second run is refused, naming the first; --break-lock does not
	// clear a live holder (this very process).
	b := NewHolder("run-b", "pb", time.Now())
	for _, brk := range []bool{false, true} {
		_, err = acquireLock(ctx, c, "h1", LockOptions{Dir: dir, StaleAfter: time.Minute, Break: brk}, b)
		var le *LockError
		if !errors.As(err, &le) || le.Holder == nil || le.Holder.RunID != "run-a" || le.Stale != "" {
			t.Fatalf("break=%v: %v; want refused by live run-a", brk, err)
		}
	}
	// Release by another run id does nothing; by the holder removes it.
	if err := (&hostLock{conn: c, dir: dir}).release("run-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal("another run released the lock")
	}
	if err := la.release("run-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lock not released: %v", err)
	}
	// The run made the lock's parent, so it removed it again.
	if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the lock's parent, made by this run, was left: %v", err)
	}
	// A parent that existed before is kept.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if l, err := acquireLock(ctx, c, "h1", LockOptions{Dir: dir}, a); err != nil || l.release("run-a") != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(dir)); err != nil {
		t.Errorf("a parent that existed before was removed: %v", err)
	}
	_ = os.Remove(filepath.Dir(dir))
	// A stale lock (old heartbeat, other controller) is cleared only with Break.
	if _, err := acquireLock(ctx, c, "h1", LockOptions{Dir: dir}, a); err != nil {
		t.Fatal(err)
	}
	other := a
	other.Controller = "elsewhere"
	if err := os.WriteFile(filepath.Join(dir, "holder"), []byte(other.encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-10 * time.Minute)
	_ = os.Chtimes(filepath.Join(dir, "holder"), old, old)
	if _, err := acquireLock(ctx, c, "h1", LockOptions{Dir: dir, StaleAfter: time.Minute}, b); err == nil || !strings.Contains(err.Error(), "looks stale") {
		t.Fatalf("stale lock without Break: %v", err)
	}
	lb, err := acquireLock(ctx, c, "h1", LockOptions{Dir: dir, StaleAfter: time.Minute, Break: true}, b)
	if err != nil {
		t.Fatalf("Break on a stale lock: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "holder"))
	if !strings.Contains(string(data), "run_id=run-b\n") {
		t.Errorf("holder after Break = %q", data)
	}
	if err := lb.release("run-b"); err != nil {
		t.Fatal(err)
	}
}

func TestLockHeartbeat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lock")
	c := &shConn{fakeConn{name: "h1"}}
	l, err := acquireLock(context.Background(), c, "h1", LockOptions{Dir: dir}, NewHolder("run-a", "pb", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	holder := filepath.Join(dir, "holder")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(holder, old, old); err != nil {
		t.Fatal(err)
	}
	l.heartbeat(50*time.Millisecond, 90*time.Second, "run-a")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := os.Stat(holder)
		if err == nil && time.Since(st.ModTime()) < time.Minute {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat did not refresh the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := l.release("run-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock left after release: %v", err)
	}
}

// asideConn counts how beats reach the host: RunAside calls, and Run calls
// (a session when the shell is busy). take says whether a queued beat is
// started at once (an idle shell) or never (a step holding the shell).
type asideConn struct {
	fakeConn
	take  bool
	mu    sync.Mutex
	aside int
	runs  int
}

func (c *asideConn) RunAside(cmd string) (<-chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aside++
	ch := make(chan struct{})
	if c.take {
		close(ch)
	}
	return ch, true
}

func (c *asideConn) Run(ctx context.Context, cmd string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs++
	return nil, nil
}

func (c *asideConn) counts() (aside, runs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aside, c.runs
}

// TestLockHeartbeatAside: beats go through RunAside; one that no command
// takes by the next tick is sent with Run, and the next is queued again;
// when 3 intervals do not fit in StaleAfter every beat uses Run.
func TestLockHeartbeatAside(t *testing.T) {
	const every = 40 * time.Millisecond
	beat := func(c *asideConn, stale time.Duration) (aside, runs int) {
		l := &hostLock{conn: c, dir: "/nonexistent"}
		l.heartbeat(every, stale, "run-a")
		time.Sleep(10*every + every/2)
		close(l.stop)
		<-l.done
		return c.counts()
	}
	if a, r := beat(&asideConn{take: true}, 90*time.Second); a < 5 || r != 0 {
		t.Errorf("idle shell: %d beats aside, %d with Run; want all aside", a, r)
	}
	// Never taken: queued, then Run at the next tick, then queued again.
	if a, r := beat(&asideConn{take: false}, 90*time.Second); a < 3 || r < 3 || a-r < -1 || a-r > 1 {
		t.Errorf("busy shell: %d beats aside, %d with Run; want them alternating", a, r)
	}
	if a, r := beat(&asideConn{take: true}, 3*every); a != 0 || r < 5 {
		t.Errorf("StaleAfter of 3 intervals: %d beats aside, %d with Run; want all with Run", a, r)
	}
}
