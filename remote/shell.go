package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kplay/kplay/internal/shellquote"
	"golang.org/x/crypto/ssh"
)

// A new SSH session per command costs the host a fork of sshd's session
// process, the user's login shell and, in kplay's wrapper, env and sh: about
// 30 ms of host CPU and two round trips each (measured in bench/RESULTS.md).
// So a connection keeps one long-lived `sh` on the host, started once in one
// session, and runs the commands that need no stdin through it, one at a
// time: the shell forks `KPLAY_CMD=TAG sh -c CMD </dev/null` per command and
// prints an end marker with a fresh random nonce after the command's stdout
// and stderr. Each command still runs in its own `sh -c` (cd, exit, set,
// traps and variables do not leak into the next), with the same environment
// and working directory a session would give it, and carries the same tag,
// so a cancelled command's processes are killed exactly as before; the
// shell itself is killed too, so it cannot start anything more.
//
// Commands with stdin (WriteFile) or a become password (sudo -S reads it
// from stdin), and commands issued while the shell is busy, use a session of
// their own, as do all commands if the shell cannot be started.
//
// Two differences from a session per command: a command killed by a signal
// reports exit status 128+n, as shells do, not the signal's name; and a
// command that leaves a background process holding its stdout returns
// without waiting for it. Bytes that arrive between commands make the
// shell be replaced; bytes that arrive while the next command runs would
// be counted as that command's output.

// shellReadyTimeout bounds the wait for a new shell's first answer.
const shellReadyTimeout = 10 * time.Second

// hostShell is the long-lived shell of one connection.
type hostShell struct {
	sess  *ssh.Session
	stdin io.WriteCloser
	out   *markedStream
	err   *markedStream
	// exited is closed when the session ends (the shell died or the
	// connection was lost); exitErr is why.
	exited  chan struct{}
	exitErr error
}

// shellSlot is a client's shell and the lock that makes it run one command
// at a time.
type shellSlot struct {
	busy sync.Mutex // held while a command runs in the shell (TryLock: busy → own session)
	sh   *hostShell // nil: not started (or discarded)
	off  bool       // the shell could not be started: sessions only

	asideMu sync.Mutex
	aside   *asideCmd // queued by RunAside while busy: rides the next command
}

// asideCmd is a command queued by RunAside: line starts it in the
// background; started is closed once line was written to the shell.
type asideCmd struct {
	line    string
	started chan struct{}
}

// takeAside returns the queued aside command, if any, and unqueues it.
func (s *shellSlot) takeAside() *asideCmd {
	s.asideMu.Lock()
	defer s.asideMu.Unlock()
	a := s.aside
	s.aside = nil
	return a
}

// RunAside starts cmd, a short command whose output and exit status are
// not wanted (the run lock's heartbeat), on the host without a session of
// its own and without delaying any other command: in the background of the
// connection's long-lived shell (tagged, stdin, stdout and stderr
// /dev/null), written at once when the shell is idle, else written just
// before the next command the shell runs, replacing a command queued
// before. started is closed once cmd was handed to the shell; it stays
// open when no command comes, or the shell is lost. ok is false, and
// nothing is queued, when the connection has no usable shell (not started,
// sessions only, or a become password): then use Run.
func (c *Client) RunAside(cmd string) (started <-chan struct{}, ok bool) {
	if c.cfg.Become && c.cfg.BecomePassword != "" || strings.IndexByte(cmd, 0) >= 0 {
		return nil, false
	}
	tag := c.prefix + "." + strconv.FormatUint(c.seq.Add(1), 10)
	a := &asideCmd{line: c.shellWrap(tag, cmd) + " </dev/null >/dev/null 2>&1 & ", started: make(chan struct{})}
	if !c.shell.busy.TryLock() {
		c.shell.asideMu.Lock()
		c.shell.aside = a
		c.shell.asideMu.Unlock()
		if !c.shell.busy.TryLock() {
			return a.started, true // the command running now, or the next, takes it
		}
		// The shell came free meanwhile: start it now, unless a command took it.
		if a = c.shell.takeAside(); a == nil {
			c.shell.busy.Unlock()
			return nil, false
		}
	}
	defer c.shell.busy.Unlock()
	sh := c.shell.sh
	if c.shell.off || sh == nil || sh.out.isTainted() || sh.err.isTainted() || isClosed(sh.exited) {
		return nil, false
	}
	if _, err := io.WriteString(sh.stdin, a.line+"\n"); err != nil {
		c.discardShell()
		return nil, false
	}
	close(a.started)
	return a.started, true
}

// runInShell runs cmd (tagged with tag, stdin /dev/null) in the
// connection's shell. ok is false when the shell cannot take it (busy,
// unavailable): the caller then runs it in a session of its own, and
// nothing has run. status is the command's exit status.
func (c *Client) runInShell(ctx context.Context, tag, cmd string) (stdout []byte, stderr string, status int, ok bool, err error) {
	if !c.shell.busy.TryLock() {
		return nil, "", 0, false, nil
	}
	defer c.shell.busy.Unlock()
	if c.shell.off {
		return nil, "", 0, false, nil
	}
	sh := c.shell.sh
	if sh != nil && (sh.out.isTainted() || sh.err.isTainted() || isClosed(sh.exited)) {
		// Output that arrived between commands (a background process of an
		// earlier command still writing) or a dead shell: start afresh.
		c.discardShell()
		sh = nil
	}
	if sh == nil {
		sh, err = c.startShell(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", 0, true, fmt.Errorf("command not started (%w)", context.Cause(ctx))
			}
			c.shell.off = true
			return nil, "", 0, false, nil
		}
		c.shell.sh = sh
	}
	nonce := "KPLAY-END-" + randomID() + randomID()
	sh.out.expect(nonce, true, maxOutput)
	sh.err.expect(nonce, false, 16<<10)
	line := c.shellWrap(tag, cmd) + " </dev/null; printf '\\n%s %d\\n' " + nonce + " $?; printf '\\n%s\\n' " + nonce + " >&2\n"
	aside := c.shell.takeAside()
	if aside != nil {
		// Started in the background just before the command: it writes
		// nothing to the shell's output and the command does not wait for it.
		line = aside.line + line
	}
	if _, werr := io.WriteString(sh.stdin, line); werr != nil {
		c.discardShell()
		return nil, "", 0, true, c.connErr("starting command", werr)
	}
	if aside != nil {
		close(aside.started)
	}
	outDone, errDone := sh.out.done, sh.err.done
wait:
	for outDone != nil || errDone != nil {
		select {
		case <-outDone:
			outDone = nil
		case <-errDone:
			errDone = nil
		case <-sh.exited:
			break wait
		case <-ctx.Done():
			// Kill the shell first, so that it cannot start anything more,
			// then every process carrying the command's tag.
			c.discardShell()
			c.kill(tag)
			return withoutSecret(sh.out.result()), "", 0, true,
				fmt.Errorf("command cancelled (%w); its processes on the host were killed", context.Cause(ctx))
		}
	}
	if !sh.out.finished() || !sh.err.finished() {
		c.discardShell()
		err := c.connErr("running command", shellLost(sh))
		return withoutSecret(sh.out.result()), "", 0, true,
			fmt.Errorf("%w; its processes may still run on the host (find them by KPLAY_CMD=%s in /proc/*/environ)", err, tag)
	}
	stdout, stderr, status = sh.out.result(), sh.err.resultString(), sh.out.status
	if sh.out.isTainted() || sh.err.isTainted() {
		c.discardShell()
	}
	return stdout, stderr, status, true, nil
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// shellWrap is the line that runs one command in the shell: like wrap, but
// the tag is set by the shell (one exec less than env) unless sudo must
// carry it across its environment reset.
func (c *Client) shellWrap(tag, cmd string) string {
	if c.sudo != "" {
		return c.wrap(tag, cmd)
	}
	return "KPLAY_CMD=" + tag + " sh -c " + shellquote.Quote(cmd)
}

// shellLost explains why a shell ended in the middle of a command.
func shellLost(sh *hostShell) error {
	<-sh.exited
	if sh.exitErr != nil {
		return fmt.Errorf("%w (%v)", io.EOF, sh.exitErr)
	}
	return io.EOF
}

// startShell opens the shell's session and waits until the shell answers.
func (c *Client) startShell(ctx context.Context) (*hostShell, error) {
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, err
	}
	sh := &hostShell{sess: sess, out: newMarkedStream(), err: newMarkedStream(), exited: make(chan struct{})}
	sess.Stdout, sess.Stderr = sh.out, sh.err
	if sh.stdin, err = sess.StdinPipe(); err != nil {
		sess.Close()
		return nil, err
	}
	// `exec sh` works from any login shell (sh, bash, zsh, csh, fish).
	if err := sess.Start("exec sh"); err != nil {
		sess.Close()
		return nil, err
	}
	go func() {
		sh.exitErr = sess.Wait()
		close(sh.exited)
	}()
	nonce := "KPLAY-READY-" + randomID()
	sh.out.expect(nonce, true, 1024)
	sh.err.expect(nonce, false, 1024)
	if _, err := io.WriteString(sh.stdin, "printf '\\n%s %d\\n' "+nonce+" 0; printf '\\n%s\\n' "+nonce+" >&2\n"); err != nil {
		sh.close()
		return nil, err
	}
	t := context.AfterFunc(ctx, func() { sh.close() })
	defer t()
	select {
	case <-waitAll(sh.out.done, sh.err.done):
	case <-sh.exited:
	case <-c.done:
	case <-time.After(shellReadyTimeout):
	}
	// Output before the marker (a chatty login shell) is ignored: it came
	// once, before any command.
	if !sh.out.finished() || !sh.err.finished() || sh.out.status != 0 {
		sh.close()
		return nil, errors.New("the host's shell did not answer")
	}
	return sh, nil
}

// waitAll returns a channel closed when both a and b are closed.
func waitAll(a, b <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		<-a
		<-b
		close(out)
	}()
	return out
}

// discardShell kills and forgets the connection's shell; the next command
// starts a new one.
func (c *Client) discardShell() {
	if sh := c.shell.sh; sh != nil {
		sh.close()
		c.shell.sh = nil
	}
}

// close kills the shell (SIGKILL on its session, as on a cancelled session
// command) and closes the session.
func (sh *hostShell) close() {
	_ = sh.sess.Signal(ssh.SIGKILL)
	_ = sh.stdin.Close()
	_ = sh.sess.Close()
}

// markedStream receives one of the shell's output streams and splits it
// into commands' outputs at their end markers ("\n" NONCE, and on stdout
// " STATUS\n" after it). Bytes that arrive while no command is expected are
// dropped and make the stream tainted.
type markedStream struct {
	mu      sync.Mutex
	marker  []byte
	status  int
	wantSt  bool
	limit   int
	head    bool // keep the first limit bytes (stdout), else the last (stderr)
	data    []byte
	total   int    // bytes received for the current command
	tail    []byte // the last bytes received, to find the marker across the limit
	done    chan struct{}
	over    bool // the current command's output is complete
	tainted bool
}

// newMarkedStream returns a stream expecting nothing yet.
func newMarkedStream() *markedStream {
	d := make(chan struct{})
	close(d)
	return &markedStream{done: d, over: true}
}

// expect starts a command: its output ends at "\n"+nonce.
func (m *markedStream) expect(nonce string, withStatus bool, limit int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.marker = []byte("\n" + nonce)
	m.wantSt, m.limit, m.head = withStatus, limit, withStatus
	m.data, m.tail, m.total, m.status = nil, nil, 0, 0
	m.done, m.over = make(chan struct{}), false
}

// tailWindow is how many of the last bytes are searched for the marker.
const tailWindow = 256

// Write takes the next bytes of the stream.
func (m *markedStream) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.over {
		if len(p) > 0 {
			m.tainted = true
		}
		return len(p), nil
	}
	m.total += len(p)
	if m.head {
		if room := m.limit + tailWindow - len(m.data); room > 0 {
			m.data = append(m.data, p[:min(room, len(p))]...)
		}
	} else {
		m.data = append(m.data, p...)
		if keep := m.limit + tailWindow; len(m.data) > keep {
			m.data = append(m.data[:0], m.data[len(m.data)-keep:]...)
		}
	}
	m.tail = append(m.tail, p...)
	if len(m.tail) > 2*tailWindow {
		m.tail = append(m.tail[:0], m.tail[len(m.tail)-tailWindow:]...)
	}
	i := bytes.Index(m.tail, m.marker)
	if i < 0 {
		return len(p), nil
	}
	rest := m.tail[i+len(m.marker):]
	nl := bytes.IndexByte(rest, '\n')
	if nl < 0 {
		return len(p), nil
	}
	if m.wantSt {
		st, err := strconv.Atoi(string(bytes.TrimSpace(rest[:nl])))
		if err != nil {
			st = -1
		}
		m.status = st
	} else if nl != 0 {
		return len(p), nil
	}
	// pos: where the marker starts in the command's stream; what follows
	// the status line belongs to nobody.
	pos := m.total - len(m.tail) + i
	if trailing := len(rest) - nl - 1; trailing > 0 {
		m.tainted = true
	}
	if m.head {
		m.data = m.data[:min(pos, len(m.data), m.limit)]
	} else {
		cut := len(m.data) - (m.total - pos)
		m.data = m.data[:max(cut, 0)]
		if len(m.data) > m.limit {
			m.data = m.data[len(m.data)-m.limit:]
		}
	}
	m.over = true
	close(m.done)
	return len(p), nil
}

// finished reports whether the current command's output is complete.
func (m *markedStream) finished() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.over
}

// result returns the current command's output (so far, if unfinished).
func (m *markedStream) result() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.data
	if !m.over && m.head && len(out) > m.limit {
		out = out[:m.limit]
	}
	return bytes.Clone(out)
}

// isTainted reports whether bytes arrived that belong to no command.
func (m *markedStream) isTainted() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tainted
}

// resultString returns the output as a string.
func (m *markedStream) resultString() string { return string(m.result()) }
