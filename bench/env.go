package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kplay/kplay/testbed"
)

// cleanPATH is the PATH every contender runs with: no pyenv shims or other
// per-user tools of the controller's shell.
const cleanPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// env is one bed and the files the contenders share.
type env struct {
	cfg   Config
	bed   *testbed.Bed
	dir   string
	n     int
	steps []Step
	// home is an empty HOME for the contenders, so that no user
	// configuration of the controller (~/.ssh/config, ~/.ansible.cfg, ...)
	// applies.
	home string
	// inventory is a kplay inventory of the bed.
	inventory string
	// sshConfig is, on a bed with a bastion, the OpenSSH client config that
	// reaches every host through it (testbed Bed.SSHConfigPath); every
	// contender reads it. Else "".
	sshConfig string
}

// keepaliveBedMin is the largest bed whose inventory keeps kplay's default
// keepalive (5 s × 3); larger beds set a 60 s window (keepalive_interval
// 10s, keepalive_count_max 6).
const keepaliveBedMin = 100

// newEnv writes the files every contender needs.
func newEnv(cfg Config, bed *testbed.Bed, dir string) (*env, error) {
	e := &env{cfg: cfg, bed: bed, dir: dir, n: len(bed.Hosts), steps: Steps(), home: filepath.Join(dir, "home"), sshConfig: bed.SSHConfigPath}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		return nil, err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "defaults:\n  user: root\n  key: %s\n  known_hosts: %s\n  connect_timeout: 30s\n", bed.KeyPath, bed.KnownHostsPath)
	if e.n > keepaliveBedMin {
		// At 300 hosts on 2 cores (load ~230) a live host's sshd has gone
		// 15 s without CPU, kplay's default keepalive window: wait 60 s.
		s.WriteString("  keepalive_interval: 10s\n  keepalive_count_max: 6\n")
	}
	s.WriteString("hosts:\n")
	for _, h := range bed.Hosts {
		fmt.Fprintf(&s, "  %s: {address: %s}\n", h.Name, h.Address)
	}
	e.inventory = filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(e.inventory, []byte(s.String()), 0o644); err != nil {
		return nil, err
	}
	return e, nil
}

// sshConfigFile is the OpenSSH client config the ssh-based contenders
// read: the bed's bastion config, else /dev/null (no configuration at all).
func (e *env) sshConfigFile() string {
	if e.sshConfig != "" {
		return e.sshConfig
	}
	return "/dev/null"
}

// environ is the environment of every contender.
func (e *env) environ() []string {
	return []string{"PATH=" + cleanPATH, "HOME=" + e.home, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TERM=dumb"}
}

// rusage returns a finished process's user+system CPU (its own and its
// waited-for descendants') and peak RSS in KiB.
func rusage(ps *os.ProcessState) (time.Duration, int64) {
	if ps == nil {
		return 0, 0
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return ps.UserTime() + ps.SystemTime(), 0
	}
	return ps.UserTime() + ps.SystemTime(), ru.Maxrss
}

// procStat is the part of /proc/PID/stat the benchmark reads.
type procStat struct {
	comm, state                  string
	ppid                         int
	utime, stime, cutime, cstime int64 // clock ticks
}

// readStat reads /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	st := procStat{comm: s[open+1 : closing], state: f[0]}
	st.ppid, _ = strconv.Atoi(f[1])
	st.utime, _ = strconv.ParseInt(f[11], 10, 64)
	st.stime, _ = strconv.ParseInt(f[12], 10, 64)
	st.cutime, _ = strconv.ParseInt(f[13], 10, 64)
	st.cstime, _ = strconv.ParseInt(f[14], 10, 64)
	return st, nil
}

// ticks converts clock ticks (USER_HZ, 100 on Linux) to a duration.
func ticks(t int64) time.Duration { return time.Duration(t) * 10 * time.Millisecond }

// hostsCPU returns the CPU used so far inside the hosts by every host's
// sshd: the listener, the per-connection sshd processes, login shells and
// commands (live ones and those already reaped), plus what each host's init
// reaped (orphans). With settle it first waits until no host has a
// per-connection sshd left, so that a finished run is counted whole.
func hostsCPU(ctx context.Context, bed *testbed.Bed, settle bool) (time.Duration, error) {
	return sshdCPU(ctx, bed.Hosts, settle)
}

// sshdCPU is hostsCPU for the given hosts (a bed's, or its bastion alone).
func sshdCPU(ctx context.Context, hosts []*testbed.Host, settle bool) (time.Duration, error) {
	inits := map[int]bool{}
	for _, h := range hosts {
		inits[h.InitPID()] = true
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return 0, err
		}
		all := map[int]procStat{}
		for _, en := range entries {
			pid, err := strconv.Atoi(en.Name())
			if err != nil {
				continue
			}
			if st, err := readStat(pid); err == nil {
				all[pid] = st
			}
		}
		var total int64
		listeners := map[int]bool{}
		for pid, st := range all {
			if st.comm == "sshd" && inits[st.ppid] {
				listeners[pid] = true
				total += st.utime + st.stime + st.cutime + st.cstime
			}
		}
		if len(listeners) != len(hosts) {
			return 0, fmt.Errorf("found %d host sshd listeners, want %d", len(listeners), len(hosts))
		}
		busy := 0
		for pid, st := range all {
			for p, depth := st.ppid, 0; p > 1 && depth < 64; p, depth = all[p].ppid, depth+1 {
				if listeners[p] {
					busy++
					total += st.utime + st.stime + st.cutime + st.cstime
					break
				}
			}
			_ = pid
		}
		if !settle || busy == 0 {
			for pid := range inits {
				st, ok := all[pid]
				if !ok {
					return 0, fmt.Errorf("host init %d is gone", pid)
				}
				total += st.cutime + st.cstime
			}
			return ticks(total), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d processes of sshd connections still running 30s after the run", busy)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// inHost returns `sh -c script` run inside host h (its namespaces, entered
// with nsenter), without SSH.
func inHost(ctx context.Context, h *testbed.Host, script string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(h.InitPID()),
		"--net", "--mount", "--pid", "--uts", "--ipc", "--wd=/", "--", "sh", "-c", script)
	cmd.Env = []string{"PATH=" + cleanPATH, "HOME=/root", "LANG=C"}
	return cmd
}

// eachHost runs fn for every host at once and returns, once all are done,
// the first host's error in host order.
func eachHost(hosts []*testbed.Host, fn func(i int, h *testbed.Host) error) error {
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, h)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// commandCPU measures, inside host h and without SSH, the CPU each step's
// command costs: a loop running it k times minus an empty loop, the median
// of three such measurements.
func commandCPU(ctx context.Context, h *testbed.Host, k int) ([]time.Duration, error) {
	run := func(body string, times int) (time.Duration, error) {
		script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do %s >/dev/null || exit 1; i=$((i+1)); done", times, body)
		cmd := inHost(ctx, h, script)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("host %s: %s: %w: %s", h.Name, body, err, strings.TrimSpace(stderr.String()))
		}
		cpu, _ := rusage(cmd.ProcessState)
		return cpu, nil
	}
	var out []time.Duration
	for _, s := range Steps() {
		var samples []time.Duration
		for range 3 {
			base, err := run("true", 0)
			if err != nil {
				return nil, err
			}
			full, err := run(s.Cmd, k)
			if err != nil {
				return nil, err
			}
			samples = append(samples, max(0, (full-base)/time.Duration(k)))
		}
		out = append(out, median(samples))
	}
	return out, nil
}

// median returns the median of ds (the lower middle for an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// Machine describes the controller and the tools' versions.
type Machine struct {
	Kernel, CPU, Memory      string
	Cores                    int
	LoadBefore, LoadAfter    string
	Go, Kplay, Ansible       string
	OpenSSH, Python, OpenSSL string
	Kubeadm                  string
}

// describeMachine collects what RESULTS.md says about the machine.
func describeMachine(ctx context.Context, cfg Config) Machine {
	m := Machine{Cores: runtime.NumCPU(), LoadBefore: loadAvg()}
	m.Kernel = firstLine(cmdOut(ctx, "uname", "-srvm"))
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.Memory = strings.Join(strings.Fields(firstLine(string(data)))[1:], " ")
	}
	m.Go = firstLine(cmdOut(ctx, "go", "version"))
	if cfg.KplayBin != "" {
		m.Kplay = firstLine(cmdOut(ctx, cfg.KplayBin, "version"))
	}
	m.Ansible = firstLine(cmdOut(ctx, "ansible-playbook", "--version"))
	m.OpenSSH = firstLine(cmdOut(ctx, "ssh", "-V"))
	m.Python = firstLine(cmdOut(ctx, "/usr/bin/python3", "--version"))
	m.OpenSSL = firstLine(cmdOut(ctx, "openssl", "version"))
	m.Kubeadm = testbed.KubernetesVersion
	return m
}

// cmdOut runs a command with a clean PATH and returns its combined output,
// or the error.
func cmdOut(ctx context.Context, name string, args ...string) string {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=" + cleanPATH + ":" + filepath.Dir(goBinary()), "HOME=" + os.TempDir(), "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return "(" + err.Error() + ")"
		}
	}
	return strings.TrimSpace(string(out))
}

// goBinary is the go on this process's PATH.
func goBinary() string {
	p, err := exec.LookPath("go")
	if err != nil {
		return "/usr/local/go/bin/go"
	}
	return p
}

// firstLine returns the first line of s.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

// loadAvg returns /proc/loadavg's three load averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
