package runner

import (
	"bufio"
	"context"
	_ "embed" // scripts/lock_*.sh
	"errors"
	"fmt"
	"os"
	"os/user"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kplay/kplay/internal/shellquote"
	"golang.org/x/sync/errgroup"
)

// DefaultLockDir is the per-host run lock: a directory created atomically
// (mkdir) before kplay changes anything on the host, holding a file that
// names its holder, and removed when the run ends.
const DefaultLockDir = "/var/lib/kplay/lock"

// LockOptions configure the per-host run lock. A run that changes hosts
// takes the lock on every host of the plan before it changes any of them;
// dry runs and kplay check change nothing and take no lock.
type LockOptions struct {
	// Dir is the lock directory on each host; empty means DefaultLockDir.
	Dir string
	// Break clears a stale lock (see Stale) and takes it. A lock that is
	// not stale is refused even then.
	Break bool
	// Heartbeat is how often the holder refreshes the lock; 0 means 20s.
	Heartbeat time.Duration
	// StaleAfter is how long without a heartbeat makes a lock held from
	// another controller stale; 0 means 90s.
	StaleAfter time.Duration
}

// Holder identifies the run that holds a host's lock.
type Holder struct {
	RunID      string
	Playbook   string
	Controller string // controller host name
	MachineID  string // controller /etc/machine-id, if any
	PID        int
	PIDStart   string // the holder process's start time in clock ticks since boot
	User       string
	Started    time.Time
	// Age is how long ago (host clock) the holder last refreshed the lock.
	Age time.Duration
}

// LockError is a host whose lock kplay could not take.
type LockError struct {
	Host string
	Dir  string
	// Holder is the other run; nil when the lock could not be taken for another reason.
	Holder *Holder
	// Stale says why the lock looks abandoned, or is "".
	Stale string
	// Broke is true when --break-lock was given but the lock is not stale.
	Broke bool
	Err   error
}

// Error names the holder and what to do.
func (e *LockError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("cannot take the run lock %s: %v", e.Dir, e.Err)
	}
	h := e.Holder
	started := "(unknown)"
	if !h.Started.IsZero() {
		started = h.Started.UTC().Format(time.RFC3339)
	}
	s := fmt.Sprintf("locked by another kplay run: run %s (playbook %q) from controller %s pid %d user %s, started %s, last heartbeat %s ago (lock %s)",
		orUnknown(h.RunID), h.Playbook, orUnknown(h.Controller), h.PID, orUnknown(h.User), started, h.Age.Round(time.Second), e.Dir)
	switch {
	case e.Stale != "":
		s += "; it looks stale (" + e.Stale + "): check that run is gone, then clear it with --break-lock"
	case e.Broke:
		s += "; not clearing it with --break-lock: its holder looks alive; wait for that run or stop it"
	default:
		s += "; wait for that run to finish"
	}
	return s
}

// Unwrap returns the cause.
func (e *LockError) Unwrap() error { return e.Err }

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// NewHolder describes this process as the holder of run runID.
func NewHolder(runID, playbook string, now time.Time) Holder {
	h := Holder{RunID: runID, Playbook: playbook, PID: os.Getpid(), Started: now}
	h.Controller, _ = os.Hostname()
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		h.MachineID = strings.TrimSpace(string(b))
	}
	h.PIDStart = procStart(h.PID)
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	}
	return h
}

// procStart returns field 22 of /proc/PID/stat (start time), or "".
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// encode formats the holder file.
func (h Holder) encode() string {
	return fmt.Sprintf("run_id=%s\nplaybook=%s\ncontroller=%s\nmachine_id=%s\npid=%d\npid_start=%s\nuser=%s\nstarted=%s\n",
		shellquote.Printable(h.RunID), shellquote.Printable(h.Playbook), shellquote.Printable(h.Controller), shellquote.Printable(h.MachineID), h.PID, shellquote.Printable(h.PIDStart), shellquote.Printable(h.User), h.Started.UTC().Format(time.RFC3339))
}

// decodeHolder parses the holder file.
func decodeHolder(s string) *Holder {
	h := &Holder{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "run_id":
			h.RunID = v
		case "playbook":
			h.Playbook = v
		case "controller":
			h.Controller = v
		case "machine_id":
			h.MachineID = v
		case "pid":
			h.PID, _ = strconv.Atoi(v)
		case "pid_start":
			h.PIDStart = v
		case "user":
			h.User = v
		case "started":
			h.Started, _ = time.Parse(time.RFC3339, v)
		}
	}
	return h
}

// staleReason says why lock holder h looks abandoned, or "" if it may be alive.
// On this controller the holder's process is checked directly (pid and start
// time); a holder on another controller is stale once its heartbeat is
// older than staleAfter (measured on the host's clock).
func staleReason(h *Holder, self Holder, staleAfter time.Duration) string {
	sameController := h.Controller == self.Controller && h.MachineID == self.MachineID && h.Controller != ""
	if sameController && h.PID > 0 {
		if st := procStart(h.PID); st == "" || st != h.PIDStart {
			return fmt.Sprintf("its process %d on this controller is gone", h.PID)
		}
		return ""
	}
	if h.Age > staleAfter {
		return fmt.Sprintf("no heartbeat for %s, more than %s", h.Age.Round(time.Second), staleAfter)
	}
	return ""
}

// hostLock is a lock kplay holds on one host.
type hostLock struct {
	conn Conn
	dir  string
	// rmParent is the lock's parent directory when this run created it.
	rmParent string
	stop     chan struct{}
	done     chan struct{}
}

const lockHeld = "held"

// The lock's scripts (runner/scripts), run with sh and quoted arguments.
var (
	//go:embed scripts/lock_acquire.sh
	lockAcquireSh string
	//go:embed scripts/lock_break.sh
	lockBreakSh string
	//go:embed scripts/lock_heartbeat.sh
	lockHeartbeatSh string
	//go:embed scripts/lock_release.sh
	lockReleaseSh string
)

// acquireLock takes the lock on one host, clearing a stale one if opts.Break.
func acquireLock(ctx context.Context, c Conn, host string, opts LockOptions, self Holder) (*hostLock, error) {
	d := opts.Dir
	for attempt := 0; attempt < 2; attempt++ {
		// The holder goes in an argument (quoted), not on stdin: a command
		// without stdin runs in the connection's long-lived shell instead
		// of a session of its own (remote/shell.go). The parent is
		// computed here and made only when missing: no dirname and mkdir
		// processes on every run.
		script := shellquote.Script(lockAcquireSh, d, path.Dir(path.Clean(d)), self.encode())
		out, err := c.Run(ctx, script)
		if err != nil {
			return nil, &LockError{Host: host, Dir: d, Err: err}
		}
		first, rest, _ := strings.Cut(string(out), "\n")
		switch first {
		case "acquired":
			return &hostLock{conn: c, dir: d}, nil
		case "acquired parent":
			// The lock's parent did not exist: release removes it again
			// if still empty, so a host the run never changed is left
			// exactly as it was.
			return &hostLock{conn: c, dir: d, rmParent: path.Dir(path.Clean(d))}, nil
		}
		if first != lockHeld {
			return nil, &LockError{Host: host, Dir: d, Err: fmt.Errorf("unexpected answer %q", out)}
		}
		ageLine, holderText, _ := strings.Cut(rest, "\n")
		h := decodeHolder(holderText)
		if secs, err := strconv.Atoi(strings.TrimPrefix(ageLine, "age=")); err == nil {
			h.Age = time.Duration(secs) * time.Second
		}
		le := &LockError{Host: host, Dir: d, Holder: h, Stale: staleReason(h, self, opts.StaleAfter), Broke: opts.Break}
		if !opts.Break || le.Stale == "" || attempt > 0 {
			return nil, le
		}
		// Clear it only if it still names the holder judged stale.
		brk := shellquote.Script(lockBreakSh, d, "run_id="+h.RunID, self.RunID)
		if _, err := c.Run(ctx, brk); err != nil {
			return nil, &LockError{Host: host, Dir: d, Err: fmt.Errorf("clearing the stale lock: %w", err)}
		}
	}
	return nil, &LockError{Host: host, Dir: d, Err: errors.New("lock changed hands while clearing it")}
}

// asideRunner is a connection that can start a short command beside the
// steps' commands without a session of its own (remote.Client.RunAside).
type asideRunner interface {
	RunAside(cmd string) (started <-chan struct{}, ok bool)
}

// heartbeat refreshes the lock's time stamp every interval until release.
// A beat goes through the host's long-lived shell (RunAside): at once when
// the shell is idle, else started in the background just before the next
// command a step sends, so that beats cost no SSH session and never delay
// a step's command. A beat that no command took by the next tick (a step
// holding the shell longer than the interval) is sent with Run instead,
// in a session of its own when the shell is still busy, bounded by the
// interval. So the holder file is touched at least every 3 intervals (a
// beat at the start of one interval, one queued in vain through the next,
// a Run taking the whole third) while the host answers: 60 s with the
// defaults, under the 90 s after which another controller may find the
// lock stale. Beats are queued only when 3 intervals fit in staleAfter;
// otherwise every beat uses Run, as every beat did before.
func (l *hostLock) heartbeat(every, staleAfter time.Duration, runID string) {
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	script := shellquote.Script(lockHeartbeatSh, l.dir, "run_id="+runID)
	aside, _ := l.conn.(asideRunner)
	if 3*every >= staleAfter {
		aside = nil
	}
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		var queued <-chan struct{} // a beat waiting for the shell
		for {
			select {
			case <-l.stop:
				return
			case <-queued:
				queued = nil // started on the host
				continue
			case <-t.C:
			}
			if aside != nil && queued == nil {
				if ch, ok := aside.RunAside(script); ok {
					queued = ch
					continue
				}
			}
			queued = nil
			ctx, cancel := context.WithTimeout(context.Background(), every)
			_, _ = l.conn.Run(ctx, script)
			cancel()
		}
	}()
}

// release removes the lock if this run still holds it.
func (l *hostLock) release(runID string) error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	args := []string{l.dir, "run_id=" + runID}
	if l.rmParent != "" {
		args = append(args, l.rmParent)
	}
	_, err := l.conn.Run(ctx, shellquote.Script(lockReleaseSh, args...))
	return err
}

// lockHosts dials every host of the plan and takes its lock before anything
// is changed. Hosts that cannot be reached keep their dial error for their
// batch. It returns false when any reachable host could not be locked: then
// no host may be changed.
func (r *run) lockHosts(ctx context.Context, forks int) bool {
	lo := *r.opts.Lock
	if lo.Dir == "" {
		lo.Dir = DefaultLockDir
	}
	if lo.Heartbeat <= 0 {
		lo.Heartbeat = 20 * time.Second
	}
	if lo.StaleAfter <= 0 {
		lo.StaleAfter = 90 * time.Second
	}
	self := NewHolder(r.opts.RunID, r.plan.Playbook.Name, r.rep.Started)
	var mu sync.Mutex
	var refused []string
	var g errgroup.Group
	g.SetLimit(forks)
	for _, h := range r.plan.Hosts {
		g.Go(func() error {
			if name, locked := r.lockHost(ctx, h, lo, self, &mu); !locked && name != "" {
				mu.Lock()
				refused = append(refused, name)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait() // every goroutine returns nil: errors are kept per host
	if len(refused) == 0 {
		return true
	}
	r.rep.Stopped = fmt.Sprintf("could not take the run lock on %s: no host was changed", strings.Join(refused, ", "))
	for _, hr := range r.rep.Hosts {
		if err := r.dialErrs[hr.Name]; err != nil {
			hr.Status = StatusUnreachable
			hr.err = fmt.Errorf("%s: %w", hr.Name, err)
			hr.Error = err.Error()
			hr.State = "unchanged: kplay could not log in, so nothing ran"
			r.hostErr(hr.err)
			continue
		}
		if hr.Status == StatusNotRun {
			hr.State = "unchanged: the run stopped before any change because another host could not be locked"
		}
	}
	return false
}

// lockHost dials host h and takes its lock. It returns h's name and false
// when h was reached but its lock refused, "" and false when h could not be
// dialled (its error is kept for its batch), and true when locked.
func (r *run) lockHost(ctx context.Context, h *HostSpec, lo LockOptions, self Holder, mu *sync.Mutex) (string, bool) {
	conn, err := r.dial(ctx, h)
	if err != nil {
		mu.Lock()
		r.dialErrs[h.Name] = err
		mu.Unlock()
		return "", false
	}
	mu.Lock()
	r.conns[h.Name] = conn
	mu.Unlock()
	// Taking the lock is a few file operations: bounded by the host's
	// connect timeout, so a hung file system cannot hang the run.
	limit := h.ConnectTimeout
	if limit <= 0 {
		limit = 10 * time.Second
	}
	lctx, cancel := context.WithTimeout(ctx, limit)
	l, err := acquireLock(lctx, conn, h.Name, lo, self)
	if err != nil && lctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		err = &LockError{Host: h.Name, Dir: lo.Dir, Err: fmt.Errorf("the host gave no answer within the connect timeout (%s) while kplay took the lock; nothing was changed: %w", limit, context.DeadlineExceeded)}
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		hr := r.hosts[h.Name]
		hr.Status = StatusFailed
		hr.err = fmt.Errorf("%s: %w", h.Name, err)
		hr.Error = err.Error()
		hr.State = "unchanged: kplay could not take its run lock, so nothing ran"
		r.hostErr(hr.err)
		return h.Name, false
	}
	l.heartbeat(lo.Heartbeat, lo.StaleAfter, r.opts.RunID)
	r.locks[h.Name] = l
	return h.Name, true
}

// releaseLocks releases every lock this run holds, after any rollback, and
// says so in the host's state when a lock could not be released.
func (r *run) releaseLocks() {
	var mu sync.Mutex
	var g errgroup.Group
	for name, l := range r.locks {
		g.Go(func() error {
			if err := l.release(r.opts.RunID); err != nil {
				mu.Lock()
				hr := r.hosts[name]
				hr.State += fmt.Sprintf("; the run lock %s on the host is still held by run %s (releasing it failed: %v): once the host is checked, clear it with --break-lock", l.dir, r.opts.RunID, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait() // every goroutine returns nil: a failed release is in its host's state
}
