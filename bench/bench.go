// Package bench measures kplay against ansible-playbook and plain OpenSSH
// (one multiplexed connection per host, each step a separate ssh call) on N
// real local test hosts (package testbed, the same hosts the integration
// tests use), and writes bench/RESULTS.md. `make bench` runs it through
// bench/cmd/kplay-bench.
//
// Every contender runs the same five read-only steps on every host. Rounds
// are interleaved (each round runs every contender once, in a rotating
// order); the first rounds are a warm-up and the medians of the rest are
// reported, with the counts of TCP connections and SSH authentications each
// host's sshd logged, the controller-side CPU and peak RSS, and the CPU
// spent inside the hosts. One more bed (Config.BastionHosts) puts the hosts
// behind one bastion, which every contender must go through; there the
// bastion's sshd log gives the connections and authentications at the
// bastion too.
package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kplay/kplay/testbed"
)

// Step is one of the benchmark's commands.
type Step struct {
	// Name is the step's name (one word: kplay's text output is parsed).
	Name string
	// Cmd is the shell command.
	Cmd string
}

// Steps returns the five read-only steps every contender runs on every host.
func Steps() []Step {
	return []Step{
		{"date", "date +%s"},
		{"ls-pki", "ls /etc/kubernetes/pki"},
		{"apiserver-enddate", "openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -enddate"},
		{"kubeadm-version", "kubeadm version -o short"},
		{"uname", "uname -r"},
	}
}

// checkOutput verifies one step's output (its last line for kplay).
func checkOutput(step int, out string, now time.Time) error {
	out = strings.TrimSpace(out)
	switch step {
	case 0:
		n, err := strconv.ParseInt(out, 10, 64)
		if err != nil {
			return fmt.Errorf("date: %q is not a number", out)
		}
		if d := time.Since(time.Unix(n, 0)); d > 10*time.Minute || d < -time.Minute {
			return fmt.Errorf("date: %q is %v away from now", out, d)
		}
	case 1:
		if !strings.Contains(out, "apiserver.crt") && !strings.Contains(out, "sa.pub") {
			return fmt.Errorf("ls: %q lists no kubeadm PKI file", out)
		}
	case 2:
		if !strings.HasPrefix(out, "notAfter=") {
			return fmt.Errorf("openssl: %q does not start with notAfter=", out)
		}
	case 3:
		if out != testbed.KubernetesVersion {
			return fmt.Errorf("kubeadm version: %q, want %s", out, testbed.KubernetesVersion)
		}
	case 4:
		if out == "" {
			return errors.New("uname -r: empty")
		}
	}
	return nil
}

// Contender names.
const (
	Kplay   = "kplay"
	Ansible = "ansible"
	OpenSSH = "openssh"
	// Direct is the reference without SSH: the commands run inside every
	// host at once (see type direct).
	Direct = "direct"
)

// Config says what to measure.
type Config struct {
	// Sizes are the numbers of hosts, e.g. 3, 30, 100.
	Sizes []int
	// Runs is the number of measured rounds (the median is reported).
	Runs int
	// Warmup is the number of rounds run first and not counted.
	Warmup int
	// Contenders to run; default kplay, ansible, openssh and the direct
	// reference.
	Contenders []string
	// BastionHosts, if positive, adds one more bed of that many hosts behind
	// one bastion (testbed Options.Bastion): the controller reaches them only
	// through it, and kplay, Ansible and OpenSSH go through it (no direct
	// reference, transport costs or profile there). It runs after the sizes
	// every contender runs on and before the kplay-only ones.
	BastionHosts int `json:",omitempty"`
	// KplayOnly are the sizes (also in Sizes) where only kplay runs: beds
	// too large for the other contenders' runs to fit (Ansible needs about
	// 2.3 s per host for the five steps), measured to show how kplay's own
	// controller CPU and memory grow with N (issue 12: N=300).
	KplayOnly []int `json:",omitempty"`
	// KplayBin is the kplay binary.
	KplayBin string
	// FullKubeMax: beds of at most this many hosts get the full kube set-up
	// (kubeadm per host, apiserver stand-ins); larger ones the light one
	// (one PKI copied to all, see testbed.Bed.AddKubeLite).
	FullKubeMax int
	// AnsibleStrategy is ansible's strategy plugin (linear or free).
	AnsibleStrategy string
	// TransportReps is how many times each transport operation is
	// measured on one host of the first size; 0 means 20, <0 none.
	TransportReps int
	// CmdCPULoops is how many times each command runs to measure its own
	// CPU; default 20.
	CmdCPULoops int
	// Profile adds, after each size's rounds, one unmeasured kplay run with
	// a CPU profile, and keeps the top of it (SizeResult.Profile).
	Profile bool
	// WorkDir holds generated playbooks and inventories; default a temp dir.
	WorkDir string
	// Logf receives progress.
	Logf func(format string, args ...any) `json:"-"`
	// SizeDone, if set, is called with the results so far after each size.
	SizeDone func(*Results) `json:"-"`
}

// Measurement is one run of one contender on one bed.
type Measurement struct {
	// Wall is the wall time of the whole run, connection set-up included.
	Wall time.Duration
	// MemStats is kplay's KPLAY_MEMSTATS line, when it was asked for.
	MemStats string `json:",omitempty"`
	// CtlCPU is the CPU (user+system) the contender used on the controller,
	// including its child processes and background ssh masters.
	CtlCPU time.Duration
	// MaxRSSKiB is the contender's peak resident set size, from GNU time
	// (kplay itself; the largest process of ansible-playbook's tree); 0
	// for openssh, whose processes are many small ssh clients.
	MaxRSSKiB int64
	// HostCPU is the CPU used inside the hosts during the run: sshd, the
	// login shells and the commands.
	HostCPU time.Duration
	// Conns and Auths are per-host counts of "Connection from" and
	// "Accepted publickey" lines the hosts' sshd logged during the run: the
	// minimum and maximum over the hosts.
	Conns, Auths [2]int
	// Sessions is the per-host count of sessions ("Starting session:"
	// lines): min and max over the hosts.
	Sessions [2]int
	// BastionConns and BastionAuths are, on a bed with a bastion, the
	// "Connection from" and "Accepted publickey" lines the bastion's sshd
	// logged during the run (totals, not per host).
	BastionConns, BastionAuths int `json:",omitempty"`
	// BastionCPU is, on a bed with a bastion, the CPU used inside the
	// bastion during the run (its sshd and the processes sshd started).
	BastionCPU time.Duration `json:",omitempty"`
	// StepTimes are, per step, the per-host durations where the contender
	// reports them (kplay, openssh).
	StepTimes [][]time.Duration
	// Connect are the per-host times to set up the connection, where the
	// contender reports them (openssh: the ControlMaster).
	Connect []time.Duration
}

// SizeResult is every measurement on one bed.
type SizeResult struct {
	N int
	// Setup describes the bed ("kube" or "kube-lite").
	Setup string
	// KplayOnly is set when only kplay ran on this bed (Config.KplayOnly).
	KplayOnly bool `json:",omitempty"`
	// Bastion is set when the hosts were reachable only through one bastion
	// (Config.BastionHosts).
	Bastion bool `json:",omitempty"`
	// Runs are the measured runs per contender (warm-up excluded).
	Runs map[string][]Measurement
	// CmdCPU is the CPU the five commands themselves cost on one host,
	// per step, measured inside a host without SSH.
	CmdCPU []time.Duration
	// Cores is the number of CPUs the controller and the hosts share.
	Cores int
	// Transport are per-operation costs measured on one idle host (first
	// size only).
	Transport []Op
	// Profile is the top of kplay's CPU profile on this bed (`go tool
	// pprof -top`), if Config.Profile.
	Profile string `json:",omitempty"`
	// MemStats are kplay's memory peaks in that run (KPLAY_MEMSTATS): live
	// heap, heap kept for reuse, goroutine stacks, goroutines.
	MemStats string `json:",omitempty"`
}

// Results is a whole benchmark.
type Results struct {
	Config  Config
	Started time.Time
	Sizes   []*SizeResult
	// Bastion is the bed behind one bastion (Config.BastionHosts), if it ran.
	Bastion *SizeResult `json:",omitempty"`
	Machine Machine
}

func (c *Config) defaults() {
	if c.Runs <= 0 {
		c.Runs = 5
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if len(c.Contenders) == 0 {
		c.Contenders = []string{Kplay, Ansible, OpenSSH, Direct}
	}
	if c.TransportReps == 0 {
		c.TransportReps = 20
	}
	if c.CmdCPULoops <= 0 {
		c.CmdCPULoops = 20
	}
	if c.AnsibleStrategy == "" {
		c.AnsibleStrategy = "linear"
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Run runs the benchmark. Beds are started and torn down one size at a time.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg.defaults()
	if _, err := os.Stat(gnuTime); err != nil {
		cfg.Logf("bench: no %s (GNU time; make bench installs it): peak RSS will not be measured", gnuTime)
	}
	if slices.Contains(cfg.Contenders, Kplay) {
		abs, err := filepath.Abs(cfg.KplayBin)
		if err != nil {
			return nil, fmt.Errorf("bench: kplay binary: %w", err)
		}
		cfg.KplayBin = abs
		if _, err := os.Stat(cfg.KplayBin); err != nil {
			return nil, fmt.Errorf("bench: kplay binary: %w", err)
		}
	}
	work := cfg.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "kplay-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		work = d
	}
	res := &Results{Config: cfg, Started: time.Now(), Machine: describeMachine(ctx, cfg)}
	done := func() {
		res.Machine.LoadAfter = loadAvg()
		if cfg.SizeDone != nil {
			cfg.SizeDone(res)
		}
	}
	// The bastion bed runs after the sizes where every contender runs and
	// before the kplay-only ones, the longest and likeliest to fail.
	bastionPending := cfg.BastionHosts > 0
	bastion := func() error {
		bastionPending = false
		n := cfg.BastionHosts
		sr, err := runSize(ctx, cfg, n, filepath.Join(work, fmt.Sprintf("bastion-n%d", n)), false, true)
		if err != nil {
			return fmt.Errorf("bench: N=%d behind a bastion: %w", n, err)
		}
		res.Bastion = sr
		done()
		return nil
	}
	for _, n := range cfg.Sizes {
		if bastionPending && slices.Contains(cfg.KplayOnly, n) {
			if err := bastion(); err != nil {
				return res, err
			}
		}
		sr, err := runSize(ctx, cfg, n, filepath.Join(work, fmt.Sprintf("n%d", n)), len(res.Sizes) == 0, false)
		if err != nil {
			return res, fmt.Errorf("bench: N=%d: %w", n, err)
		}
		res.Sizes = append(res.Sizes, sr)
		done()
	}
	if bastionPending {
		if err := bastion(); err != nil {
			return res, err
		}
	}
	res.Machine.LoadAfter = loadAvg()
	return res, nil
}

// runSize starts a bed of n hosts (behind one bastion if bastion) and
// measures every contender on it.
func runSize(ctx context.Context, cfg Config, n int, dir string, first, bastion bool) (sr *SizeResult, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sr = &SizeResult{N: n, Runs: map[string][]Measurement{}, Cores: runtime.NumCPU(), Bastion: bastion,
		KplayOnly: !bastion && slices.Contains(cfg.KplayOnly, n)}
	opts := testbed.Options{Hosts: n, KeyAlgorithm: "ECDSA-P256", Logf: cfg.Logf, Bastion: bastion}
	full := n <= cfg.FullKubeMax
	if full {
		opts.Kube = true
		sr.Setup = "kube"
	} else {
		sr.Setup = "kube-lite"
	}
	only := ""
	switch {
	case sr.KplayOnly:
		only = ", kplay only"
	case bastion:
		only = ", behind one bastion"
	}
	cfg.Logf("N=%d: starting %d hosts (%s%s)", n, n, sr.Setup, only)
	bed, err := testbed.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := bed.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if !full {
		if err := bed.AddKubeLite(ctx, testbed.KubeLiteOptions{KeyAlgorithm: "ECDSA-P256"}); err != nil {
			return nil, err
		}
	}
	env, err := newEnv(cfg, bed, dir)
	if err != nil {
		return nil, err
	}
	if !bastion {
		// The commands cost the same behind a bastion: measured on the
		// direct beds only.
		t := time.Now()
		if sr.CmdCPU, err = commandCPU(ctx, bed.Hosts[0], cfg.CmdCPULoops); err != nil {
			return nil, err
		}
		cfg.Logf("N=%d: commands' own CPU %v (measured in %v)", n, sr.CmdCPU, time.Since(t).Round(time.Millisecond))
	}
	if first && !bastion && cfg.TransportReps > 0 {
		t := time.Now()
		if sr.Transport, err = transportCosts(ctx, env, cfg.TransportReps); err != nil {
			return nil, fmt.Errorf("transport costs: %w", err)
		}
		cfg.Logf("N=%d: transport costs measured in %v", n, time.Since(t).Round(time.Millisecond))
	}
	var cs []contender
	for _, name := range cfg.Contenders {
		if sr.KplayOnly && name != Kplay {
			continue
		}
		if bastion && name == Direct {
			continue // no SSH, so no bastion: the direct beds have it
		}
		c, err := newContender(name, env)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	rounds := cfg.Warmup + cfg.Runs
	for r := 0; r < rounds; r++ {
		for i := range cs {
			c := cs[(i+r)%len(cs)]
			m, err := measure(ctx, env, c)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", c.name(), r+1, err)
			}
			tag := "warm-up"
			if r >= cfg.Warmup {
				tag = fmt.Sprintf("run %d/%d", r-cfg.Warmup+1, cfg.Runs)
				sr.Runs[c.name()] = append(sr.Runs[c.name()], m)
			}
			at := ""
			if bastion {
				at = fmt.Sprintf("  bastion: conns %d auths %d cpu %.2fs", m.BastionConns, m.BastionAuths, m.BastionCPU.Seconds())
			}
			cfg.Logf("N=%d %-8s %-9s %8.3fs  conns/host %v auths/host %v sessions/host %v%s  ctl cpu %.2fs  host cpu %.2fs  rss %d MiB  (load %s)",
				n, c.name(), tag, m.Wall.Seconds(), m.Conns, m.Auths, m.Sessions, at, m.CtlCPU.Seconds(), m.HostCPU.Seconds(), m.MaxRSSKiB>>10, loadAvg())
		}
	}
	if cfg.Profile && !bastion {
		for _, c := range cs {
			if k, ok := c.(*kplayRunner); ok {
				if sr.Profile, sr.MemStats, err = k.profile(ctx); err != nil {
					return nil, fmt.Errorf("kplay CPU profile: %w", err)
				}
				cfg.Logf("N=%d: kplay CPU profile taken", n)
			}
		}
	}
	return sr, nil
}

// contender is one way to run the steps on every host.
type contender interface {
	name() string
	// run runs the steps once on every host and returns what it measured
	// itself (wall time, controller CPU, RSS, step times); measure adds the
	// host-side figures.
	run(ctx context.Context) (Measurement, error)
}

// newContender returns the named contender.
func newContender(name string, env *env) (contender, error) {
	switch name {
	case Kplay:
		return newKplay(env)
	case Ansible:
		return newAnsible(env)
	case OpenSSH:
		return &openSSH{env: env}, nil
	case Direct:
		return &direct{env: env}, nil
	}
	return nil, fmt.Errorf("unknown contender %q (want %s, %s, %s or %s)", name, Kplay, Ansible, OpenSSH, Direct)
}

// measure runs c once and adds the hosts' view: sshd log counts and the
// CPU used inside the hosts, and the same at the bastion if there is one.
func measure(ctx context.Context, env *env, c contender) (Measurement, error) {
	logs := make([]int64, len(env.bed.Hosts))
	for i, h := range env.bed.Hosts {
		logs[i] = fileSize(h.Path(testbed.SSHDLog))
	}
	bastion := env.bed.Bastion
	var bastionLog int64
	var bastionBefore time.Duration
	if bastion != nil {
		bastionLog = fileSize(bastion.Path(testbed.SSHDLog))
		var err error
		if bastionBefore, err = sshdCPU(ctx, []*testbed.Host{bastion}, false); err != nil {
			return Measurement{}, fmt.Errorf("bastion: %w", err)
		}
	}
	before, err := hostsCPU(ctx, env.bed, false)
	if err != nil {
		return Measurement{}, err
	}
	m, err := c.run(ctx)
	if err != nil {
		return m, err
	}
	// Wait until every connection's sshd has gone (and been reaped, which
	// adds its CPU to the listener's children's times).
	after, err := hostsCPU(ctx, env.bed, true)
	if err != nil {
		return m, err
	}
	// direct reports its commands' CPU itself (they are not sshd's).
	m.HostCPU += after - before
	if bastion != nil {
		bastionAfter, err := sshdCPU(ctx, []*testbed.Host{bastion}, true)
		if err != nil {
			return m, fmt.Errorf("bastion: %w", err)
		}
		m.BastionCPU = bastionAfter - bastionBefore
		if m.BastionConns, m.BastionAuths, _, err = countLog(bastion.Path(testbed.SSHDLog), bastionLog); err != nil {
			return m, fmt.Errorf("bastion %s: %w", bastion.Name, err)
		}
	}
	m.Conns = [2]int{1 << 30, 0}
	m.Auths = [2]int{1 << 30, 0}
	m.Sessions = [2]int{1 << 30, 0}
	for i, h := range env.bed.Hosts {
		conns, auths, sessions, err := countLog(h.Path(testbed.SSHDLog), logs[i])
		if err != nil {
			return m, fmt.Errorf("host %s: %w", h.Name, err)
		}
		m.Conns = [2]int{min(m.Conns[0], conns), max(m.Conns[1], conns)}
		m.Auths = [2]int{min(m.Auths[0], auths), max(m.Auths[1], auths)}
		m.Sessions = [2]int{min(m.Sessions[0], sessions), max(m.Sessions[1], sessions)}
	}
	return m, nil
}

// fileSize returns the size of p, or 0.
func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// countLog counts the connections, authentications and sessions sshd
// logged in p after offset.
func countLog(p string, offset int64) (conns, auths, sessions int, err error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("sshd log: %w", err)
	}
	if offset > int64(len(data)) {
		offset = 0
	}
	s := string(data[offset:])
	return strings.Count(s, "Connection from "), strings.Count(s, "Accepted publickey"), strings.Count(s, "Starting session: "), nil
}
