package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SSHDLog is the path, inside a host, of its sshd's log (LogLevel VERBOSE):
// one "Connection from" line per TCP connection and one "Accepted publickey"
// line per authentication.
const SSHDLog = "/var/log/sshd.log"

// Exec runs a command inside the host (in its network, mount, PID, UTS and
// IPC namespaces, as root, with cwd / and a plain PATH), without SSH, and
// returns its standard output. A failure's error includes the standard
// error.
func (h *Host) Exec(ctx context.Context, args ...string) ([]byte, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("host %s: exec: no command", h.Name)
	}
	if err := h.alive(); err != nil {
		return nil, fmt.Errorf("host %s: exec %s: %w", h.Name, args[0], err)
	}
	nsArgs := []string{"--target", strconv.Itoa(h.initPID), "--net", "--mount", "--pid", "--uts", "--ipc", "--wd=/", "--"}
	cmd := exec.CommandContext(ctx, "nsenter", append(nsArgs, args...)...)
	cmd.Env = []string{"PATH=" + hostPATH, "HOME=/root", "USER=root", "LOGNAME=root", "LANG=C"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("host %s: exec %q: %w: %s", h.Name, strings.Join(args, " "), err,
			lastLines(strings.TrimSpace(stderr.String()), 30))
	}
	return stdout.Bytes(), nil
}

// alive checks that the host's init is the process it started as.
func (h *Host) alive() error {
	if h.initPID <= 0 {
		return errors.New("host not started")
	}
	if procStartTime(h.initPID) != h.initStart {
		return errors.New("host is not running (its init is gone)")
	}
	return nil
}

// InitPID returns the controller-side pid of the host's init (PID 1 inside
// the host).
func (h *Host) InitPID() int { return h.initPID }

// KillSSHD kills (SIGKILL) every sshd process of the host, the listener and
// the per-connection ones, so that open sessions drop and new connections are
// refused; the rest of the host keeps running. It returns once nothing
// listens on port 22.
func (h *Host) KillSSHD(ctx context.Context) error {
	if err := h.alive(); err != nil {
		return fmt.Errorf("host %s: kill sshd: %w", h.Name, err)
	}
	pids, err := h.processes("sshd")
	if err != nil {
		return fmt.Errorf("host %s: kill sshd: %w", h.Name, err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("host %s: kill sshd %d: %w", h.Name, pid, err)
		}
	}
	return h.waitSSHD(ctx, false)
}

// StartSSHD starts the host's sshd again (after KillSSHD) and returns once
// it listens.
func (h *Host) StartSSHD(ctx context.Context) error {
	if listening(h.initPID, h.Address, 22) {
		return fmt.Errorf("host %s: start sshd: sshd is already listening", h.Name)
	}
	if _, err := h.Exec(ctx, "kplay-hostinit", "start-sshd"); err != nil {
		return fmt.Errorf("host %s: start sshd: %w", h.Name, err)
	}
	return h.waitSSHD(ctx, true)
}

// SSHDRunning reports whether the host's sshd listens on port 22.
func (h *Host) SSHDRunning() bool { return listening(h.initPID, h.Address, 22) }

// waitSSHD waits until sshd listens (up) or does not (!up).
func (h *Host) waitSSHD(ctx context.Context, up bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for listening(h.initPID, h.Address, 22) != up {
		select {
		case <-ctx.Done():
			return fmt.Errorf("host %s: wait for sshd (listening=%v): %w (sshd log: %s)", h.Name, up, ctx.Err(),
				tail(h.Path(SSHDLog)))
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// processes returns the controller-side pids of the host's processes whose
// command name is comm (every process if comm is "").
func (h *Host) processes(comm string) ([]int, error) {
	var ns syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/pid", h.initPID), &ns); err != nil {
		return nil, fmt.Errorf("pid namespace: %w", err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var s syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/pid", &s) != nil || s.Dev != ns.Dev || s.Ino != ns.Ino {
			continue
		}
		if comm == "" {
			pids = append(pids, pid)
			continue
		}
		c, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(c)) == comm {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
