package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kplay/kplay/testbed"
)

// kplayRunner runs `kplay run` with forks = N and the default text output
// (and, on a bed with a bastion, `--ssh-config` naming the bed's client
// config).
type kplayRunner struct {
	env      *env
	playbook string
}

// newKplay writes the kplay playbook.
func newKplay(e *env) (*kplayRunner, error) {
	var s strings.Builder
	fmt.Fprintf(&s, "name: bench\nhosts: all\nforks: %d\nsteps:\n", e.n)
	for _, st := range e.steps {
		fmt.Fprintf(&s, "  - name: %s\n    shell: %q\n", st.Name, st.Cmd)
	}
	p := filepath.Join(e.dir, "kplay.yaml")
	if err := os.WriteFile(p, []byte(s.String()), 0o644); err != nil {
		return nil, err
	}
	return &kplayRunner{env: e, playbook: p}, nil
}

func (k *kplayRunner) name() string { return Kplay }

func (k *kplayRunner) run(ctx context.Context) (Measurement, error) {
	return k.runEnv(ctx, nil)
}

// profile runs kplay once more, outside the measured rounds, writing a CPU
// profile and its memory peaks (KPLAY_MEMSTATS), and returns the top of
// `go tool pprof -top` and the memstats line.
func (k *kplayRunner) profile(ctx context.Context) (string, string, error) {
	prof := filepath.Join(k.env.dir, "kplay.cpu.pprof")
	memProf := filepath.Join(k.env.dir, "kplay.heap.pprof")
	m, err := k.runEnv(ctx, []string{"KPLAY_CPUPROFILE=" + prof, "KPLAY_MEMSTATS=1", "KPLAY_MEMPROFILE=" + memProf})
	if err != nil {
		return "", "", err
	}
	if top, err := exec.CommandContext(ctx, goBinary(), "tool", "pprof", "-top", "-inuse_space", "-nodecount=15", k.env.cfg.KplayBin, memProf).Output(); err == nil {
		m.MemStats += "\n\nHeap near its peak (`KPLAY_MEMPROFILE`, `go tool pprof -top -inuse_space`):\n\n```\n" + strings.TrimSpace(string(top)) + "\n```"
	}
	cmd := exec.CommandContext(ctx, goBinary(), "tool", "pprof", "-top", "-cum", "-nodecount=25", k.env.cfg.KplayBin, prof)
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("go tool pprof: %w", err)
	}
	return strings.TrimSpace(string(out)), m.MemStats, nil
}

func (k *kplayRunner) runEnv(ctx context.Context, extraEnv []string) (Measurement, error) {
	e := k.env
	args := []string{"run", k.playbook, "-i", e.inventory, "--forks", strconv.Itoa(e.n)}
	if e.sshConfig != "" {
		args = append(args, "--ssh-config", e.sshConfig)
	}
	cmd, rss := timed(ctx, e, e.cfg.KplayBin, args...)
	cmd.Env = append(cmd.Env, extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	m := Measurement{Wall: time.Since(start)}
	m.CtlCPU, _ = rusage(cmd.ProcessState)
	m.MaxRSSKiB = rss()
	if err != nil {
		return m, fmt.Errorf("kplay: %w\nstdout:\n%s\nstderr:\n%s", err, lastN(stdout.String(), 40), stderr.String())
	}
	times, err := parseKplay(stdout.String(), e)
	if err != nil {
		return m, fmt.Errorf("kplay output: %w\n%s", err, lastN(stdout.String(), 40))
	}
	m.StepTimes = times
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "kplay memstats: ") {
			m.MemStats = strings.TrimPrefix(line, "kplay memstats: ")
		}
	}
	return m, nil
}

// gnuTime is GNU time, which reports a command's peak RSS.
const gnuTime = "/usr/bin/time"

// timed returns a command running name under GNU time, and a function that
// returns its peak RSS in KiB once it has run (0 if unknown, as when GNU
// time is not installed). The driver
// cannot take the RSS from its own wait4: Go starts children with
// vfork/CLONE_VM, so the kernel records the driver's own peak RSS as the
// child's too; GNU time forks, so its child starts from time's small
// memory.
func timed(ctx context.Context, e *env, name string, args ...string) (*exec.Cmd, func() int64) {
	out := filepath.Join(e.dir, "rss-"+randomSuffix())
	cmd := exec.CommandContext(ctx, gnuTime, append([]string{"-f", "%M", "-o", out, name}, args...)...)
	if _, err := os.Stat(gnuTime); err != nil {
		// No GNU time (make bench installs it): no RSS.
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.Env = e.environ()
	cmd.Dir = e.dir
	// On cancel, kill the whole process group (ansible's workers too), not
	// only time.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd, func() int64 {
		defer os.Remove(out)
		data, err := os.ReadFile(out)
		if err != nil {
			return 0
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		n, _ := strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64)
		return n
	}
}

// randomSuffix returns a short unique string for temporary file names.
func randomSuffix() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36)
}

// parseKplay checks kplay's text output: one "changed" line per host and
// step, with the command's last output line, and returns the step times.
func parseKplay(out string, e *env) ([][]time.Duration, error) {
	index := map[string]int{}
	for i, s := range e.steps {
		index[s.Name] = i
	}
	hosts := map[string]bool{}
	for _, h := range e.bed.Hosts {
		hosts[h.Name] = true
	}
	seen := map[string]bool{}
	times := make([][]time.Duration, len(e.steps))
	now := time.Now()
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !hosts[f[0]] {
			continue
		}
		i, ok := index[f[1]]
		if !ok {
			continue
		}
		if f[2] != "changed" {
			return nil, fmt.Errorf("%s %s: status %s: %s", f[0], f[1], f[2], l)
		}
		if err := checkOutput(i, strings.Join(f[4:], " "), now); err != nil {
			return nil, fmt.Errorf("%s: %w", f[0], err)
		}
		d, err := parseDur(f[3])
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", f[0], f[1], err)
		}
		times[i] = append(times[i], d)
		seen[f[0]+" "+f[1]] = true
	}
	if want := len(hosts) * len(e.steps); len(seen) != want {
		return nil, fmt.Errorf("%d host steps reported, want %d", len(seen), want)
	}
	return times, nil
}

// parseDur parses kplay's step durations: "12ms" or "1.5s".
func parseDur(s string) (time.Duration, error) {
	switch {
	case strings.HasSuffix(s, "ms"):
		n, err := strconv.Atoi(strings.TrimSuffix(s, "ms"))
		return time.Duration(n) * time.Millisecond, err
	case strings.HasSuffix(s, "s"):
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, "s"), 64)
		return time.Duration(f * float64(time.Second)), err
	}
	return 0, fmt.Errorf("duration %q", s)
}

// ansibleRunner runs ansible-playbook, tuned: forks = N, pipelining,
// ControlPersist, no fact gathering, a fixed Python interpreter, no
// compression, host keys checked against the bed's known_hosts. On a bed
// with a bastion its ssh reads the bed's client config (ProxyJump).
type ansibleRunner struct {
	env  *env
	dir  string
	runs int
}

// newAnsible writes ansible.cfg, the inventory and the playbook.
func newAnsible(e *env) (*ansibleRunner, error) {
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		return nil, fmt.Errorf("ansible-playbook not found (make bench installs Debian's ansible-core): %w", err)
	}
	dir := filepath.Join(e.dir, "ansible")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`[defaults]
inventory = hosts.ini
forks = %d
strategy = %s
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False
deprecation_warnings = False
nocows = 1
local_tmp = %s/local-tmp
timeout = 30

[ssh_connection]
pipelining = True
ssh_args = -F %s -o ControlMaster=auto -o ControlPersist=30m -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
`, e.n, e.cfg.AnsibleStrategy, dir, e.sshConfigFile(), e.bed.KnownHostsPath)
	var inv strings.Builder
	inv.WriteString("[bench]\n")
	for _, h := range e.bed.Hosts {
		fmt.Fprintf(&inv, "%s ansible_host=%s\n", h.Name, h.Address)
	}
	fmt.Fprintf(&inv, "\n[bench:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_python_interpreter=/usr/bin/python3\n", e.bed.KeyPath)
	var pb strings.Builder
	pb.WriteString("- name: bench\n  hosts: bench\n  gather_facts: false\n  tasks:\n")
	for _, st := range e.steps {
		fmt.Fprintf(&pb, "    - name: %s\n      ansible.builtin.command: %q\n", st.Name, st.Cmd)
	}
	for name, data := range map[string]string{"ansible.cfg": cfg, "hosts.ini": inv.String(), "site.yml": pb.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return nil, err
		}
	}
	return &ansibleRunner{env: e, dir: dir}, nil
}

func (a *ansibleRunner) name() string { return Ansible }

// recapLine is one host's line of Ansible's PLAY RECAP.
var recapLine = regexp.MustCompile(`(?m)^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

func (a *ansibleRunner) run(ctx context.Context) (Measurement, error) {
	e := a.env
	a.runs++
	// A fresh ControlPath directory per run: no master survives from an
	// earlier run, so every run pays its own connections, like kplay.
	cp, err := os.MkdirTemp(a.dir, "cp-")
	if err != nil {
		return Measurement{}, err
	}
	defer os.RemoveAll(cp)
	cmd, rss := timed(ctx, e, "ansible-playbook", "site.yml")
	cmd.Env = append(cmd.Env, "ANSIBLE_CONFIG="+filepath.Join(a.dir, "ansible.cfg"), "ANSIBLE_SSH_CONTROL_PATH_DIR="+cp)
	cmd.Dir = a.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	m := Measurement{Wall: time.Since(start)}
	m.CtlCPU, _ = rusage(cmd.ProcessState)
	m.MaxRSSKiB = rss()
	mcpu, merr := closeMasters(ctx, cp, e.environ())
	m.CtlCPU += mcpu
	if err != nil {
		return m, fmt.Errorf("ansible-playbook: %w\nstdout:\n%s\nstderr:\n%s", err, lastN(stdout.String(), 40), stderr.String())
	}
	if merr != nil {
		return m, merr
	}
	recaps := recapLine.FindAllStringSubmatch(stdout.String(), -1)
	if len(recaps) != e.n {
		return m, fmt.Errorf("ansible-playbook: %d recap lines, want %d\n%s", len(recaps), e.n, lastN(stdout.String(), 40))
	}
	for _, r := range recaps {
		if r[2] != strconv.Itoa(len(e.steps)) || r[4] != "0" || r[5] != "0" {
			return m, fmt.Errorf("ansible-playbook: host %s: ok=%s unreachable=%s failed=%s, want ok=%d", r[1], r[2], r[4], r[5], len(e.steps))
		}
	}
	return m, nil
}

// closeMasters stops the ssh ControlMaster of every socket in dir, all at
// once, and returns the CPU those masters used (they run in the
// background, so no wait4 accounts for them).
func closeMasters(ctx context.Context, dir string, environ []string) (time.Duration, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var total time.Duration
	var errs []error
	var wg sync.WaitGroup
	for _, en := range entries {
		if en.IsDir() {
			continue
		}
		sock := filepath.Join(dir, en.Name())
		wg.Add(1)
		go func() {
			defer wg.Done()
			cpu, err := closeMaster(ctx, sock, environ)
			mu.Lock()
			defer mu.Unlock()
			total += cpu
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return total, errors.Join(errs...)
}

// masterPID finds the pid in `ssh -O check` output.
var masterPID = regexp.MustCompile(`pid=(\d+)`)

// closeMaster stops the master listening on sock and returns its CPU.
func closeMaster(ctx context.Context, sock string, environ []string) (time.Duration, error) {
	check := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-o", "ControlPath="+sock, "-O", "check", "bench")
	check.Env = environ
	out, _ := check.CombinedOutput()
	pid := 0
	if m := masterPID.FindSubmatch(out); m != nil {
		pid, _ = strconv.Atoi(string(m[1]))
	}
	if pid == 0 {
		return 0, nil
	}
	var cpu time.Duration
	if st, err := readStat(pid); err == nil {
		cpu = ticks(st.utime + st.stime)
	}
	stop := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-o", "ControlPath="+sock, "-O", "exit", "bench")
	stop.Env = environ
	if out, err := stop.CombinedOutput(); err != nil {
		return cpu, fmt.Errorf("stopping ssh master %s: %w: %s", sock, err, out)
	}
	for {
		if st, err := readStat(pid); err != nil || st.state == "Z" {
			return cpu, nil
		}
		select {
		case <-ctx.Done():
			return cpu, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// openSSH is the floor: plain OpenSSH, all hosts in parallel, per host one
// ControlMaster connection (set up inside the measured time, as kplay's
// connections are) and then each step as a separate `ssh` through it. On a
// bed with a bastion each master reaches its host with the client config's
// ProxyJump (its own `ssh -W` to the bastion).
type openSSH struct {
	env  *env
	runs int
}

func (o *openSSH) name() string { return OpenSSH }

// sshArgs are the options of every ssh the floor runs.
func (o *openSSH) sshArgs(ctl string) []string {
	e := o.env
	return []string{"-F", e.sshConfigFile(), "-i", e.bed.KeyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + e.bed.KnownHostsPath, "-o", "StrictHostKeyChecking=yes",
		"-o", "ConnectTimeout=30", "-o", "ControlPath=" + ctl, "-l", "root"}
}

func (o *openSSH) run(ctx context.Context) (Measurement, error) {
	e := o.env
	o.runs++
	dir, err := os.MkdirTemp(e.dir, "cm-")
	if err != nil {
		return Measurement{}, err
	}
	defer os.RemoveAll(dir)
	var cpu atomic.Int64
	exe := func(args []string) (string, time.Duration, error) {
		cmd := exec.CommandContext(ctx, "ssh", args...)
		cmd.Env = e.environ()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t := time.Now()
		err := cmd.Run()
		d := time.Since(t)
		c, _ := rusage(cmd.ProcessState)
		cpu.Add(int64(c))
		if err != nil {
			return "", d, fmt.Errorf("ssh %s: %w: %s", strings.Join(args[len(args)-2:], " "), err, strings.TrimSpace(stderr.String()))
		}
		return stdout.String(), d, nil
	}
	m := Measurement{StepTimes: make([][]time.Duration, len(e.steps))}
	connect := make([]time.Duration, e.n)
	var mu sync.Mutex
	start := time.Now()
	err = eachHost(e.bed.Hosts, func(i int, h *testbed.Host) error {
		ctl := filepath.Join(dir, strconv.Itoa(i))
		base := o.sshArgs(ctl)
		master := append(append([]string{}, base...), "-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-f", "-N", h.Address)
		_, d, err := exe(master)
		connect[i] = d
		if err != nil {
			return fmt.Errorf("host %s: master: %w", h.Name, err)
		}
		now := time.Now()
		for si, st := range e.steps {
			args := append(append([]string{}, base...), "-o", "ControlMaster=no", h.Address, st.Cmd)
			out, d, err := exe(args)
			if err == nil {
				err = checkOutput(si, out, now)
			}
			if err != nil {
				return fmt.Errorf("host %s: step %s: %w", h.Name, st.Name, err)
			}
			mu.Lock()
			m.StepTimes[si] = append(m.StepTimes[si], d)
			mu.Unlock()
		}
		return nil
	})
	m.Wall = time.Since(start)
	mcpu, merr := closeMasters(ctx, dir, e.environ())
	m.CtlCPU = time.Duration(cpu.Load()) + mcpu
	m.Connect = connect
	if err != nil {
		return m, err
	}
	return m, merr
}

// lastN returns the last n lines of s.
func lastN(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// direct is a reference, not a contender: the five commands run inside every
// host at once without SSH (nsenter into the host's namespaces, one `sh`
// per host running the commands in order, each its own process as over
// SSH). Its wall time is what the commands themselves cost at this N on these
// shared cores; what any SSH tool takes beyond it is the price of SSH and of
// the tool.
type direct struct {
	env *env
}

func (d *direct) name() string { return Direct }

func (d *direct) run(ctx context.Context) (Measurement, error) {
	e := d.env
	var script strings.Builder
	for _, st := range e.steps {
		// One line per step's output, as kplay and ssh see it.
		fmt.Fprintf(&script, "%s || exit 1\n", st.Cmd)
	}
	var cpu atomic.Int64
	start := time.Now()
	err := eachHost(e.bed.Hosts, func(_ int, h *testbed.Host) error {
		cmd := inHost(ctx, h, script.String())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		c, _ := rusage(cmd.ProcessState)
		cpu.Add(int64(c))
		if err != nil {
			return fmt.Errorf("host %s: %w: %s", h.Name, err, strings.TrimSpace(stderr.String()))
		}
		first, _, _ := strings.Cut(stdout.String(), "\n")
		if err := checkOutput(0, first, start); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		return nil
	})
	return Measurement{Wall: time.Since(start), HostCPU: time.Duration(cpu.Load())}, err
}
