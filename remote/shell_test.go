package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/testbed"
)

func TestMarkedStream(t *testing.T) {
	const nonce = "KPLAY-END-abc"
	for _, tc := range []struct {
		name       string
		withStatus bool
		limit      int
		chunks     []string
		want       string
		status     int
		done       bool
		tainted    bool
	}{
		{name: "one chunk", withStatus: true, limit: 100, chunks: []string{"hello\n\n" + nonce + " 0\n"}, want: "hello\n", done: true},
		{name: "no trailing newline", withStatus: true, limit: 100, chunks: []string{"abc", "\n" + nonce + " 7\n"}, want: "abc", status: 7, done: true},
		{name: "empty", withStatus: true, limit: 100, chunks: []string{"\n" + nonce + " 0\n"}, want: "", done: true},
		{name: "marker split", withStatus: true, limit: 100, chunks: []string{"x\n" + nonce[:5], nonce[5:] + " 1", "2\n"}, want: "x", status: 12, done: true},
		{name: "status line incomplete", withStatus: true, limit: 100, chunks: []string{"x\n" + nonce + " 1"}, done: false},
		{name: "other nonce is output", withStatus: true, limit: 100, chunks: []string{"\nKPLAY-END-abd 0\n", "\n" + nonce + " 0\n"}, want: "\nKPLAY-END-abd 0\n", done: true},
		{name: "head limit", withStatus: true, limit: 3, chunks: []string{"abcdef", strings.Repeat("g", 1000), "\n" + nonce + " 0\n"}, want: "abc", done: true},
		{name: "marker straddles the limit", withStatus: true, limit: 4, chunks: []string{"ab\n" + nonce + " 0\n"}, want: "ab", done: true},
		{name: "stderr marker", limit: 100, chunks: []string{"warn\n", "\n" + nonce + "\n"}, want: "warn\n", done: true},
		{name: "stderr tail", limit: 4, chunks: []string{strings.Repeat("a", 1000) + "wxyz", "\n" + nonce + "\n"}, want: "wxyz", done: true},
		{name: "bytes after the marker", withStatus: true, limit: 100, chunks: []string{"a\n" + nonce + " 0\nstray"}, want: "a", done: true, tainted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMarkedStream()
			m.expect(nonce, tc.withStatus, tc.limit)
			for _, c := range tc.chunks {
				if n, err := m.Write([]byte(c)); n != len(c) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := m.finished(); got != tc.done {
				t.Fatalf("finished = %v, want %v", got, tc.done)
			}
			if !tc.done {
				return
			}
			if got := string(m.result()); got != tc.want {
				t.Errorf("output = %q, want %q", got, tc.want)
			}
			if m.status != tc.status {
				t.Errorf("status = %d, want %d", m.status, tc.status)
			}
			if m.isTainted() != tc.tainted {
				t.Errorf("tainted = %v, want %v", m.isTainted(), tc.tainted)
			}
		})
	}
	m := newMarkedStream()
	m.Write([]byte("between commands"))
	if !m.isTainted() {
		t.Error("bytes while no command runs did not taint the stream")
	}
}

// shellHost dials the first host of a fresh one-host bed.
func shellHost(t *testing.T) (*testbed.Bed, *testbed.Host, *Client) {
	t.Helper()
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	c, err := Dial(t.Context(), Config{Name: h.Name, Address: h.Address, KeyPath: b.KeyPath, KnownHosts: b.KnownHostsPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return b, h, c
}

// sessions counts the sessions the host's sshd has started so far.
func sessions(t *testing.T, h *testbed.Host) int {
	t.Helper()
	log, err := os.ReadFile(h.Path(testbed.SSHDLog))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(log), "Starting session: ")
}

// TestShellOverSSH runs commands through the connection's long-lived shell
// on a real host: exact outputs, exit statuses, isolation between commands,
// one session for all of them.
func TestShellOverSSH(t *testing.T) {
	_, h, c := shellHost(t)
	ctx := t.Context()
	before := sessions(t, h)
	for _, tc := range []struct {
		cmd, want string
		status    int
		stderr    string
	}{
		{cmd: "printf abc", want: "abc"},
		{cmd: "printf 'a\\nb\\n'", want: "a\nb\n"},
		{cmd: "printf '\\001\\002\\377\\n\\n'", want: "\x01\x02\xff\n\n"},
		{cmd: "head -c 200000 /dev/zero | tr '\\0' x", want: strings.Repeat("x", 200000)},
		{cmd: "echo oops >&2; echo out; exit 3", want: "out\n", status: 3, stderr: "oops"},
		{cmd: "cd /tmp; export KPLAY_LEAK=1; umask 077; FOO=2; exit 0"},
		{cmd: "pwd; echo ${KPLAY_LEAK-unset} ${FOO-unset}; umask", want: "/root\nunset unset\n0022\n"},
		{cmd: "printf '\\nKPLAY-END-0000 0\\n'", want: "\nKPLAY-END-0000 0\n"},
		{cmd: "cat; echo read-nothing", want: "read-nothing\n"},
		// The command's own sh and its children carry the kill tag.
		{cmd: "tr '\\0' '\\n' </proc/$$/environ | grep -c '^KPLAY_CMD=' && cat /proc/self/environ | tr '\\0' '\\n' | grep -c '^KPLAY_CMD='", want: "1\n1\n"},
	} {
		out, err := c.Run(ctx, tc.cmd)
		if string(out) != tc.want {
			t.Errorf("%s: output %q, want %q", tc.cmd, out, tc.want)
		}
		st, isExit := hostexec.ExitStatus(err)
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%s: %v", tc.cmd, err)
		case tc.status != 0 && (!isExit || st != tc.status):
			t.Errorf("%s: error %v, want exit status %d", tc.cmd, err, tc.status)
		case tc.stderr != "" && !strings.Contains(err.Error(), tc.stderr):
			t.Errorf("%s: error %v does not show stderr %q", tc.cmd, err, tc.stderr)
		}
	}
	if _, err := c.Run(ctx, "printf -- '-----BEGIN PRIVATE KEY-----\\n'"); !errors.Is(err, hostexec.ErrSecretPath) {
		t.Errorf("private key output: err = %v, want hostexec.ErrSecretPath", err)
	}
	// Commands with stdin still get a session of their own.
	if out, err := c.RunInput(ctx, "cat", []byte("in")); err != nil || string(out) != "in" {
		t.Errorf("RunInput = %q, %v", out, err)
	}
	if n := sessions(t, h) - before; n != 2 {
		t.Errorf("%d sessions for 12 commands, want 2 (the shell and the command with stdin)", n)
	}
}

// TestShellCancelKills cancels a command running in the shell: every
// process it started dies, including one that left its process group, and
// the next command works.
func TestShellCancelKills(t *testing.T) {
	_, h, c := shellHost(t)
	if _, err := c.Run(t.Context(), "true"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, "setsid sleep 997 & sleep 998; touch /tmp/should-not-exist")
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("err = %v, want a cancelled command", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := h.Exec(t.Context(), "ps", "-eo", "args")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "sleep 99") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the cancelled command still run:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(h.Path("/tmp/should-not-exist")); err == nil {
		t.Error("the cancelled command went on to its next command")
	}
	if out, err := c.Run(t.Context(), "echo again"); err != nil || string(out) != "again\n" {
		t.Errorf("after a cancel: %q, %v", out, err)
	}
}

// TestShellStrayOutput: a command that leaves a background process writing
// to its stdout does not corrupt later commands' output when the stray
// bytes arrive between commands (the shell is replaced).
func TestShellStrayOutput(t *testing.T) {
	_, _, c := shellHost(t)
	ctx := t.Context()
	if out, err := c.Run(ctx, "(sleep 0.3; echo stray; echo stray >&2) & echo first"); err != nil || string(out) != "first\n" {
		t.Fatalf("first: %q, %v", out, err)
	}
	time.Sleep(time.Second)
	for i := range 3 {
		if out, err := c.Run(ctx, "echo next"); err != nil || string(out) != "next\n" {
			t.Errorf("command %d after stray output: %q, %v", i, out, err)
		}
	}
}

// TestShellConcurrent runs commands on one connection from several
// goroutines: the shell takes one at a time, the others get sessions.
func TestShellConcurrent(t *testing.T) {
	_, _, c := shellHost(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := strings.Repeat("y", 1000*(i+1))
			out, err := c.Run(t.Context(), "head -c "+strconv.Itoa(1000*(i+1))+" /dev/zero | tr '\\0' y")
			if err != nil || !bytes.Equal(out, []byte(want)) {
				t.Errorf("goroutine %d: %d bytes, %v", i, len(out), err)
			}
		}()
	}
	wg.Wait()
}

// TestShellAside starts commands with RunAside on a real host: at once when
// the shell is idle, and with the next command when it is busy, without a
// session of their own, without their output reaching any command's, and
// without the next command waiting for them.
func TestShellAside(t *testing.T) {
	_, h, c := shellHost(t)
	ctx := t.Context()
	if _, err := c.Run(ctx, "true"); err != nil {
		t.Fatal(err)
	}
	before := sessions(t, h)
	waitFile := func(p string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(h.Path(p)); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the aside command did not run", p)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	started, ok := c.RunAside("echo noise; echo noise >&2; touch /tmp/aside-idle")
	if !ok || !isClosed(started) {
		t.Fatalf("idle shell: RunAside = %v, started %v; want started at once", ok, isClosed(started))
	}
	waitFile("/tmp/aside-idle")
	// Busy: the aside command waits for the next command, which does not
	// wait for it.
	slow := make(chan string, 1)
	go func() {
		out, err := c.Run(ctx, "sleep 0.5; echo slow")
		slow <- fmt.Sprint(string(out), err)
	}()
	time.Sleep(200 * time.Millisecond)
	started, ok = c.RunAside("echo noise; echo noise >&2; sleep 2; touch /tmp/aside-busy")
	if !ok || isClosed(started) {
		t.Fatalf("busy shell: RunAside = %v, started %v; want queued", ok, isClosed(started))
	}
	if got := <-slow; got != "slow\n<nil>" {
		t.Errorf("the running command: %q", got)
	}
	if isClosed(started) {
		t.Error("the queued command started before any next command")
	}
	t0 := time.Now()
	if out, err := c.Run(ctx, "echo next; echo warn >&2; exit 4"); string(out) != "next\n" || err == nil || strings.Contains(err.Error(), "noise") {
		t.Errorf("next command: %q, %v", out, err)
	}
	if d := time.Since(t0); d > 1500*time.Millisecond {
		t.Errorf("the next command took %v: it waited for the aside command", d)
	}
	if !isClosed(started) {
		t.Error("the queued command was not started with the next command")
	}
	waitFile("/tmp/aside-busy")
	if out, err := c.Run(ctx, "echo after"); string(out) != "after\n" || err != nil {
		t.Errorf("after: %q, %v", out, err)
	}
	if n := sessions(t, h) - before; n != 0 {
		t.Errorf("%d new sessions, want 0: aside commands and the next ones all went through the shell", n)
	}
}

// TestKeepaliveOnlyWhenQuiet: as OpenSSH's ServerAliveInterval, a keepalive
// goes out only after an interval with nothing received: none while a
// command's output streams in, one per interval on an idle connection.
func TestKeepaliveOnlyWhenQuiet(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	h := b.Hosts[0]
	const every = 200 * time.Millisecond
	c, err := Dial(t.Context(), Config{Name: h.Name, Address: h.Address, KeyPath: b.KeyPath, KnownHosts: b.KnownHostsPath, KeepaliveInterval: every, KeepaliveMax: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := c.keepalives.Load()
	// 3 s of output, a line every 50 ms.
	if _, err := c.Run(t.Context(), "i=0; while [ $i -lt 60 ]; do echo $i; sleep 0.05; i=$((i+1)); done"); err != nil {
		t.Fatal(err)
	}
	busy := c.keepalives.Load() - start
	time.Sleep(3 * time.Second)
	idle := c.keepalives.Load() - start - busy
	if busy > 2 {
		t.Errorf("%d keepalives while output arrived for 3 s, want at most 2", busy)
	}
	if idle < 7 || idle > 16 {
		t.Errorf("%d keepalives in 3 idle seconds, want about 15 (one per 200 ms)", idle)
	}
	if _, err := c.Run(t.Context(), "true"); err != nil {
		t.Errorf("after the keepalives: %v", err)
	}
}
