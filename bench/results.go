package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// stats summarises one contender's runs on one bed.
type stats struct {
	runs                   int
	wall, wallMin, wallMax time.Duration
	ctlCPU, hostCPU        time.Duration
	rssMax, rssMedian      int64
	connsMin, connsMax     int
	authsMin, authsMax     int
	sessMin, sessMax       int
	steps                  []time.Duration // median per step over hosts and runs
	connect                time.Duration   // median connection set-up, if known
	walls                  []time.Duration

	// At the bastion, per run (bastion beds only): min and max over the
	// runs of the connections and authentications, median CPU.
	bastionConnsMin, bastionConnsMax int
	bastionAuthsMin, bastionAuthsMax int
	bastionCPU                       time.Duration
}

// summarise computes the stats of ms.
func summarise(ms []Measurement, nsteps int) stats {
	var s stats
	if len(ms) == 0 {
		return s
	}
	s.runs = len(ms)
	var walls, ctl, host, connect, bastion []time.Duration
	var rss []int64
	s.connsMin, s.authsMin, s.sessMin = 1<<30, 1<<30, 1<<30
	s.bastionConnsMin, s.bastionAuthsMin = 1<<30, 1<<30
	steps := make([][]time.Duration, nsteps)
	for _, m := range ms {
		walls = append(walls, m.Wall)
		ctl = append(ctl, m.CtlCPU)
		host = append(host, m.HostCPU)
		rss = append(rss, m.MaxRSSKiB)
		s.connsMin, s.connsMax = min(s.connsMin, m.Conns[0]), max(s.connsMax, m.Conns[1])
		s.authsMin, s.authsMax = min(s.authsMin, m.Auths[0]), max(s.authsMax, m.Auths[1])
		s.sessMin, s.sessMax = min(s.sessMin, m.Sessions[0]), max(s.sessMax, m.Sessions[1])
		s.bastionConnsMin, s.bastionConnsMax = min(s.bastionConnsMin, m.BastionConns), max(s.bastionConnsMax, m.BastionConns)
		s.bastionAuthsMin, s.bastionAuthsMax = min(s.bastionAuthsMin, m.BastionAuths), max(s.bastionAuthsMax, m.BastionAuths)
		bastion = append(bastion, m.BastionCPU)
		for i := range min(nsteps, len(m.StepTimes)) {
			steps[i] = append(steps[i], m.StepTimes[i]...)
		}
		connect = append(connect, m.Connect...)
	}
	s.walls = walls
	s.wall = median(walls)
	s.wallMin, s.wallMax = slices.Min(walls), slices.Max(walls)
	s.ctlCPU, s.hostCPU, s.bastionCPU = median(ctl), median(host), median(bastion)
	slices.Sort(rss)
	s.rssMax, s.rssMedian = rss[len(rss)-1], rss[(len(rss)-1)/2]
	for _, st := range steps {
		s.steps = append(s.steps, median(st))
	}
	s.connect = median(connect)
	return s
}

// stat returns the stats of contender c on sr.
func (sr *SizeResult) stat(c string) stats { return summarise(sr.Runs[c], len(Steps())) }

// cmdCPU is the CPU the five commands cost on all N hosts.
func (sr *SizeResult) cmdCPU() time.Duration {
	var one time.Duration
	for _, d := range sr.CmdCPU {
		one += d
	}
	return one * time.Duration(sr.N)
}

// Target is one of issue 5's targets and whether the benchmark met it.
type Target struct {
	Name   string
	Detail string
	Met    bool
	// Known is false when the runs needed to judge it are missing.
	Known bool
}

// Targets judges the targets on these results.
func (r *Results) Targets() []Target {
	var ts []Target
	ratio := func(other string, limit float64, label string) {
		t := Target{Name: label, Known: true, Met: true}
		var parts []string
		for _, sr := range r.Sizes {
			if sr.KplayOnly {
				continue // only kplay ran there, by request
			}
			k, o := sr.stat(Kplay), sr.stat(other)
			if k.runs == 0 || o.runs == 0 {
				t.Known = false
				continue
			}
			q := k.wall.Seconds() / o.wall.Seconds()
			ok := q <= limit
			t.Met = t.Met && ok
			parts = append(parts, fmt.Sprintf("N=%d: %.3f× %s", sr.N, q, mark(ok)))
		}
		t.Detail = strings.Join(parts, "; ")
		t.Known = t.Known && len(parts) > 0
		ts = append(ts, t)
	}
	ratio(Ansible, 1.0/8, "kplay ≤ 1/8 of Ansible's wall time at every N")
	ratio(OpenSSH, 1.0, "kplay ≤ 1.0× the OpenSSH floor at every N")

	// Fan-out: the largest N against the smallest, beyond the commands' own
	// CPU; over the sizes where every contender ran (issue 5's sizes), as
	// the direct reference is not run on kplay-only beds.
	var small, large *SizeResult
	for _, sr := range r.Sizes {
		if sr.stat(Kplay).runs == 0 || sr.KplayOnly {
			continue
		}
		if small == nil || sr.N < small.N {
			small = sr
		}
		if large == nil || sr.N > large.N {
			large = sr
		}
	}
	if small != nil && large != nil && large.N > small.N {
		ts = append(ts, r.fanOut(small, large))
	}
	if l := r.largestKplay(); l != nil {
		large = l
		k := large.stat(Kplay)
		ok := k.rssMax <= 64<<10
		detail := fmt.Sprintf("max over runs %.1f MiB (median %.1f MiB) %s", float64(k.rssMax)/1024, float64(k.rssMedian)/1024, mark(ok))
		if k.rssMax == 0 {
			detail = "GNU time was not installed"
		}
		ts = append(ts, Target{Name: fmt.Sprintf("kplay peak RSS ≤ 64 MiB at N=%d", large.N),
			Detail: detail, Met: ok, Known: k.rssMax > 0})
	}
	t := Target{Name: "kplay: exactly one TCP connection and one authentication per host per run", Met: true}
	var parts []string
	for _, sr := range r.Sizes {
		k := sr.stat(Kplay)
		if k.runs == 0 {
			continue
		}
		t.Known = true
		ok := k.connsMin == 1 && k.connsMax == 1 && k.authsMin == 1 && k.authsMax == 1
		t.Met = t.Met && ok
		parts = append(parts, fmt.Sprintf("N=%d: connections %s, authentications %s %s", sr.N,
			span(k.connsMin, k.connsMax), span(k.authsMin, k.authsMax), mark(ok)))
	}
	t.Detail = strings.Join(parts, "; ")
	ts = append(ts, t)
	return append(ts, r.scaleTargets()...)
}

// largestKplay is the largest size kplay ran on, or nil.
func (r *Results) largestKplay() *SizeResult {
	var large *SizeResult
	for _, sr := range r.Sizes {
		if sr.stat(Kplay).runs > 0 && (large == nil || sr.N > large.N) {
			large = sr
		}
	}
	return large
}

// flatTolerance is how much a per-host cost may grow from one size to the
// next and still count as flat: run-to-run noise on a shared VM.
const flatTolerance = 1.25

// scaleRow is kplay's growth from the previous size to this one.
type scaleRow struct {
	sr *SizeResult
	k  stats
	// cpuPerHost is the median controller CPU divided by N; rssPerHost the
	// peak RSS (max over runs) divided by N, in KiB.
	cpuPerHost time.Duration
	rssPerHost float64
	// cpuAdded and rssAdded are the marginal costs from the previous size:
	// (X(N) − X(prev)) / (N − prev); valid when hasPrev.
	cpuAdded time.Duration
	rssAdded float64
	hasPrev  bool
}

// scale returns kplay's per-host costs at every size it ran on, in order of N.
func (r *Results) scale() []scaleRow {
	var rows []scaleRow
	for _, sr := range r.Sizes {
		k := sr.stat(Kplay)
		if k.runs == 0 {
			continue
		}
		row := scaleRow{sr: sr, k: k, cpuPerHost: k.ctlCPU / time.Duration(sr.N), rssPerHost: float64(k.rssMax) / float64(sr.N)}
		if len(rows) > 0 {
			p := rows[len(rows)-1]
			if dn := sr.N - p.sr.N; dn > 0 {
				row.cpuAdded = (k.ctlCPU - p.k.ctlCPU) / time.Duration(dn)
				row.rssAdded = float64(k.rssMax-p.k.rssMax) / float64(dn)
				row.hasPrev = true
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// scaleTargets judges issue 12's "Scale": kplay's controller CPU and peak
// RSS per host stay flat from the smallest N to the largest. A fixed cost
// (process start, the playbook, the Go runtime) makes the plain per-host
// figure (total ÷ N) fall with N, so flatness is judged on the marginal
// cost of each added host: from one size to the next, (X(N) − X(prev)) ÷
// (N − prev) must stay within flatTolerance of the first such step.
func (r *Results) scaleTargets() []Target {
	rows := r.scale()
	if len(rows) < 3 {
		return nil
	}
	first, last := rows[0].sr.N, rows[len(rows)-1].sr.N
	cpu := Target{Name: fmt.Sprintf("kplay's controller CPU per host flat from N=%d to N=%d", first, last), Known: true, Met: true}
	rss := Target{Name: fmt.Sprintf("kplay's peak RSS per host flat from N=%d to N=%d", first, last), Known: true, Met: true}
	var cpuParts, rssParts []string
	base := rows[1]
	for _, row := range rows[1:] {
		okC := float64(row.cpuAdded) <= flatTolerance*float64(base.cpuAdded)
		okR := row.rssAdded <= flatTolerance*base.rssAdded
		cpu.Met = cpu.Met && okC
		rss.Met = rss.Met && okR
		cpuParts = append(cpuParts, fmt.Sprintf("N=%d: %.2f ms/host, %.2f ms per added host %s", row.sr.N, ms(row.cpuPerHost), ms(row.cpuAdded), mark(okC)))
		rssParts = append(rssParts, fmt.Sprintf("N=%d: %.0f KiB/host, %.0f KiB per added host %s", row.sr.N, row.rssPerHost, row.rssAdded, mark(okR)))
		if row.k.rssMax == 0 {
			rss.Known = false
		}
	}
	how := fmt.Sprintf(" (flat: the cost of each added host, from one size to the next, at most %.2f× that from N=%d to N=%d; N=%d: ",
		flatTolerance, first, base.sr.N, first)
	cpu.Detail = strings.Join(cpuParts, "; ") + how + fmt.Sprintf("%.2f ms/host)", ms(rows[0].cpuPerHost))
	rss.Detail = strings.Join(rssParts, "; ") + how + fmt.Sprintf("%.0f KiB/host)", rows[0].rssPerHost)
	return []Target{cpu, rss}
}

// fanOut judges "at the largest N, no more than 2× the smallest N's time
// beyond the commands' own cost". The commands' cost at N is the direct
// reference's wall time there (the commands on all N hosts at once on the
// same shared cores, without SSH) when it was measured, else their CPU
// measured on one host × N / cores. The detail also gives the part no SSH
// client can avoid on this machine: each host's sshd CPU for one connection
// and one session, N of them on the shared cores.
func (r *Results) fanOut(small, large *SizeResult) Target {
	k := large.stat(Kplay)
	ts0, tl := small.stat(Kplay).wall, k.wall
	cores := time.Duration(large.Cores)
	var cmd time.Duration
	var how string
	if d := large.stat(Direct); d.runs > 0 {
		cmd = d.wall
		how = fmt.Sprintf("the commands alone on all %d hosts at once, without SSH (direct, median)", large.N)
	} else {
		cmd = large.cmdCPU() / cores
		how = fmt.Sprintf("%d hosts × %.1f ms of command CPU / %d cores", large.N, ms(large.cmdCPU()/time.Duration(large.N)), large.Cores)
	}
	beyond := tl - cmd
	ok := beyond <= 2*ts0
	detail := fmt.Sprintf("%.3fs − %.3fs (%s) = %.3fs vs 2 × %.3fs = %.3fs %s",
		tl.Seconds(), cmd.Seconds(), how, beyond.Seconds(), ts0.Seconds(), 2*ts0.Seconds(), mark(ok))
	if conn, sess, found := r.sshdCosts(); found {
		floor := time.Duration(large.N) * (conn + sess) / cores
		detail += fmt.Sprintf(". The hosts' sshd alone needs %.1f ms of CPU per connection and %.1f ms per session (Transport costs), "+
			"so %d hosts on %d shared cores cost any SSH client at least %.3fs beyond the commands",
			ms(conn), ms(sess), large.N, large.Cores, floor.Seconds())
		if floor > 2*ts0 {
			detail += fmt.Sprintf(": more than the %.3fs allowed, so on this machine the target cannot be met by any SSH client; "+
				"kplay's %.3fs beyond is %.2f× that floor", 2*ts0.Seconds(), beyond.Seconds(), beyond.Seconds()/floor.Seconds())
		}
	}
	host := k.hostCPU / cores
	bound := host + k.ctlCPU/cores
	detail += fmt.Sprintf(". All CPU of the kplay run (inside the hosts %.2fs, kplay itself %.2fs) needs %.3fs on %d cores: the run took %.2f× that bound",
		k.hostCPU.Seconds(), k.ctlCPU.Seconds(), bound.Seconds(), large.Cores, tl.Seconds()/bound.Seconds())
	return Target{
		Name:   fmt.Sprintf("at N=%d, ≤ 2× the N=%d time beyond the commands' own cost", large.N, small.N),
		Detail: detail, Met: ok, Known: true,
	}
}

// sshdCosts returns the host CPU of one kplay connection (TCP, handshake,
// authentication) and of one session, from the transport costs.
func (r *Results) sshdCosts() (conn, sess time.Duration, ok bool) {
	var c, s bool
	for _, sr := range r.Sizes {
		for _, op := range sr.Transport {
			switch {
			case strings.HasPrefix(op.Name, "kplay: connect"):
				conn, c = op.HostCPU, true
			case strings.HasPrefix(op.Name, "kplay: one command (`true`) in a session of its own"):
				sess, s = op.HostCPU, true
			}
		}
	}
	return conn, sess, c && s
}

func mark(ok bool) string {
	if ok {
		return "(met)"
	}
	return "(NOT met)"
}

func span(a, b int) string {
	if a == b {
		return fmt.Sprint(a)
	}
	return fmt.Sprintf("%d–%d", a, b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Summary is the console report: medians and wall-time ratios.
func (r *Results) Summary() string {
	var b strings.Builder
	b.WriteString("\n" + r.table())
	b.WriteString("\nTargets:\n")
	for _, t := range r.Targets() {
		state := "MET"
		switch {
		case !t.Known:
			state = "not measured"
		case !t.Met:
			state = "NOT MET"
		}
		fmt.Fprintf(&b, "  [%s] %s: %s\n", state, t.Name, t.Detail)
	}
	if r.Bastion != nil {
		fmt.Fprintf(&b, "\nBehind one bastion (N=%d):\n\n", r.Bastion.N)
		b.WriteString(r.bastionTable())
		for _, f := range r.bastionFindings() {
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	return b.String()
}

// table is the main results table (Markdown, readable as text).
func (r *Results) table() string {
	var b strings.Builder
	b.WriteString("| N | contender | median wall | min–max | kplay ÷ this | conns/host | auths/host | sessions/host | controller CPU | controller CPU per host | host CPU | peak RSS |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sr := range r.Sizes {
		k := sr.stat(Kplay)
		for _, c := range r.Config.Contenders {
			s := sr.stat(c)
			if s.runs == 0 {
				continue
			}
			ratio := "–"
			switch {
			case k.runs == 0 || c == Kplay:
			case c == Direct:
				ratio = fmt.Sprintf("%.3f", k.wall.Seconds()/s.wall.Seconds())
			default:
				ratio = fmt.Sprintf("%.3f (%.1f×)", k.wall.Seconds()/s.wall.Seconds(), s.wall.Seconds()/k.wall.Seconds())
			}
			rss := "–"
			if s.rssMax > 0 {
				rss = fmt.Sprintf("%.1f MiB", float64(s.rssMax)/1024)
			}
			conns, auths, sess, ctl := span(s.connsMin, s.connsMax), span(s.authsMin, s.authsMax), span(s.sessMin, s.sessMax), fmt.Sprintf("%.2f s", s.ctlCPU.Seconds())
			perHost := fmt.Sprintf("%.2f ms", ms(s.ctlCPU/time.Duration(sr.N)))
			if c == Direct {
				conns, auths, sess, ctl, perHost = "–", "–", "–", "–", "–"
			}
			name := c
			if sr.KplayOnly {
				name += " (alone)"
			}
			fmt.Fprintf(&b, "| %d | %s | %.3f s | %.3f–%.3f s | %s | %s | %s | %s | %s | %s | %.2f s | %s |\n",
				sr.N, name, s.wall.Seconds(), s.wallMin.Seconds(), s.wallMax.Seconds(), ratio,
				conns, auths, sess, ctl, perHost, s.hostCPU.Seconds(), rss)
		}
	}
	return b.String()
}

// Markdown renders RESULTS.md.
func (r *Results) Markdown() string {
	var b strings.Builder
	m := r.Machine
	b.WriteString("# kplay benchmark results\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (bench/cmd/kplay-bench) on %s. Sizes: %s; %d warm-up round(s), then the median of %d.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), sizes(r), r.Config.Warmup, r.Config.Runs)
	b.WriteString("## Results\n\n")
	b.WriteString(r.table())
	b.WriteString("\n`kplay ÷ this` is kplay's median wall time divided by the contender's (in brackets: how many times faster kplay is). " +
		"`conns/host`, `auths/host` and `sessions/host` are the `Connection from`, `Accepted publickey` and `Starting session:` lines each host's sshd logged during one run " +
		"(min–max over hosts and runs). `controller CPU` is user+system CPU on the controller (the contender, its children and its " +
		"background ssh masters); `host CPU` is CPU spent inside all the hosts (sshd, login shells, the commands). `peak RSS` is GNU time's " +
		"maximum resident set size (kplay itself; the largest process of ansible-playbook's tree), the maximum over the runs; " +
		"not measured for the many small ssh clients of the floor. " +
		"`direct` is not a contender but the reference for what the work itself costs: the five commands run inside every host at once " +
		"(nsenter into the host, one `sh` running them in order), without SSH; its host CPU is the commands' own, under the same contention. " +
		"`controller CPU per host` is the median controller CPU divided by N.")
	if only := r.kplayOnlySizes(); only != "" {
		fmt.Fprintf(&b, " `kplay (alone)`: at N=%s only kplay ran (`-kplay-only-n`): Ansible needs about 2.3 s per host for the five steps, "+
			"so its runs there would take most of an hour; these beds measure how kplay's own CPU and memory grow with N (see \"Scale\").", only)
	}
	b.WriteString("\n\n")
	b.WriteString("All runs, in seconds (measured rounds, in order):\n\n")
	for _, sr := range r.Sizes {
		for _, c := range r.Config.Contenders {
			s := sr.stat(c)
			if s.runs == 0 {
				continue
			}
			var ws []string
			for _, w := range s.walls {
				ws = append(ws, fmt.Sprintf("%.3f", w.Seconds()))
			}
			fmt.Fprintf(&b, "- N=%d %s: %s\n", sr.N, c, strings.Join(ws, ", "))
		}
	}
	b.WriteString("\n## Targets (issues 5 and 12)\n\n")
	for _, t := range r.Targets() {
		state := "met"
		switch {
		case !t.Known:
			state = "not measured"
		case !t.Met:
			state = "**NOT met**"
		}
		fmt.Fprintf(&b, "- %s: %s. %s\n", t.Name, state, t.Detail)
	}
	b.WriteString(r.scaleSection())
	b.WriteString(r.bastionSection())
	b.WriteString("\n## How kplay gets there\n\n")
	b.WriteString(design)
	b.WriteString("\n## Per-step costs\n\n")
	b.WriteString(r.stepTable())
	for _, sr := range r.Sizes {
		if sr.Profile == "" {
			continue
		}
		fmt.Fprintf(&b, "\n### kplay's CPU profile, N=%d\n\n", sr.N)
		b.WriteString("One more kplay run, not counted in the results, with `KPLAY_CPUPROFILE` set (Go's CPU profiler, 100 samples a second); " +
			"`go tool pprof -top -cum` (sorted by cum, the time in a function and what it calls; flat is in the function itself). " +
			"Total samples against the run's duration is the share of one core kplay used:\n\n```\n" + sr.Profile + "\n```\n")
		if sr.MemStats != "" {
			fmt.Fprintf(&b, "\nIts memory, sampled every 20 ms (`KPLAY_MEMSTATS`): %s.\n", sr.MemStats)
		}
	}
	b.WriteString("\n## Machine and versions\n\n")
	fmt.Fprintf(&b, "- CPU: %s, %d cores shared by the controller and every host; memory %s\n", m.CPU, m.Cores, memory(m.Memory))
	fmt.Fprintf(&b, "- Kernel: %s\n", m.Kernel)
	fmt.Fprintf(&b, "- Load average (1, 5, 15 min) before: %s; after: %s. The load counts the test hosts' own processes "+
		"(at N=100, a hundred hosts' commands at once); the machine is a shared VM, so other work may have run too (the driver "+
		"logs the load with every run)\n", m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(&b, "- %s; %s\n", m.Kplay, m.Go)
	fmt.Fprintf(&b, "- %s (Debian); %s\n", m.Ansible, m.Python)
	fmt.Fprintf(&b, "- %s (client and the hosts' sshd); %s\n", m.OpenSSH, m.OpenSSL)
	fmt.Fprintf(&b, "- kubeadm %s (built from source by testbed/build/k8s.sh)\n", m.Kubeadm)
	b.WriteString("\n## Method\n\n")
	b.WriteString(method(r))
	b.WriteString(e2eSection)
	return b.String()
}

// e2eSection points to the real control plane's figures, which `make
// bench-e2e` writes into their own file (so that `make bench` never drops
// them).
const e2eSection = `
## Real control plane: kplay vs the hand-written Ansible playbook

Issue 12's comparison on 3 real control-plane nodes (etcd, kube-apiserver, controller-manager, scheduler):
the hand-written Ansible playbook [bench/anchor/renew.yml](anchor/renew.yml) against ` + "`kplay run playbooks/renew.yaml`" + `,
rounds alternating which runs first, every apiserver's ` + "`/readyz`" + ` polled during each run. Its figures (wall
times per round, medians and ratio, each host's longest apiserver unready time, and where kplay's seconds go: per step,
and per component of restart_apiserver, down / up / healthy) are in [RESULTS-e2e.md](RESULTS-e2e.md), written by
` + "`make bench-e2e`" + ` (` + "`TestE2ESpeedAgainstAnchor`" + ` in integration/e2e_speed_test.go), not by ` + "`make bench`" + `.
`

// kplayOnlySizes lists the sizes where only kplay ran, e.g. "300".
func (r *Results) kplayOnlySizes() string {
	var out []string
	for _, sr := range r.Sizes {
		if sr.KplayOnly {
			out = append(out, fmt.Sprint(sr.N))
		}
	}
	return strings.Join(out, ", ")
}

// scaleSection renders kplay's per-host costs by N (issue 12, Scale).
func (r *Results) scaleSection() string {
	rows := r.scale()
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Scale: kplay's controller CPU and memory per host (issue 12)\n\n")
	b.WriteString("| N | bed | kplay median wall | controller CPU (median) | per host | per added host | peak RSS (max; median) | per host | per added host |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range rows {
		bed := row.sr.Setup
		if row.sr.KplayOnly {
			bed += ", kplay alone"
		}
		addC, addR := "–", "–"
		if row.hasPrev {
			addC = fmt.Sprintf("%.2f ms", ms(row.cpuAdded))
			addR = fmt.Sprintf("%.0f KiB", row.rssAdded)
		}
		rss, rssHost := "–", "–"
		if row.k.rssMax > 0 {
			rss = fmt.Sprintf("%.1f MiB; %.1f MiB", float64(row.k.rssMax)/1024, float64(row.k.rssMedian)/1024)
			rssHost = fmt.Sprintf("%.0f KiB", row.rssPerHost)
		} else {
			addR = "–"
		}
		fmt.Fprintf(&b, "| %d | %s | %.3f s | %.2f s | %.2f ms | %s | %s | %s | %s |\n",
			row.sr.N, bed, row.k.wall.Seconds(), row.k.ctlCPU.Seconds(), ms(row.cpuPerHost), addC, rss, rssHost, addR)
	}
	b.WriteString("\n`per host` is the figure divided by N; `per added host` is the growth from the size above, divided by the hosts added " +
		"((X(N) − X(previous N)) ÷ (N − previous N)): a fixed cost (process start, parsing the playbook, the Go runtime) makes the plain " +
		"per-host figure fall with N, while the added-host figure shows whether each host costs more as N grows. Controller CPU is kplay's " +
		"user+system time (`wait4` rusage); peak RSS is GNU time's maximum resident set size of the kplay process.\n")
	for _, row := range rows {
		if row.k.sessMax > 1 {
			fmt.Fprintf(&b, "\nAt N=%d kplay opened up to %d sessions per host (median run %.0f s): the run lock's heartbeat takes a "+
				"session of its own when one step holds the host's shell from one heartbeat (every 20 s) to the next (see \"Counts\" "+
				"under Method).\n", row.sr.N, row.k.sessMax, row.k.wall.Seconds())
		}
		if host := row.k.hostCPU / time.Duration(row.sr.Cores); row.sr.Cores > 0 && row.k.wall > 0 && row.sr.N == rows[len(rows)-1].sr.N {
			fmt.Fprintf(&b, "\nAt N=%d the hosts' own CPU (sshd, shells, commands: %.1f s, median) needs %.1f s of the %d shared cores, "+
				"%.0f %% of kplay's median wall time there: the hosts, not kplay, set the pace.\n",
				row.sr.N, row.k.hostCPU.Seconds(), host.Seconds(), row.sr.Cores, 100*host.Seconds()/row.k.wall.Seconds())
		}
	}
	if l := r.largestKplay(); l != nil {
		k := l.stat(Kplay)
		switch {
		case k.rssMax == 0:
			fmt.Fprintf(&b, "\n**Peak RSS ≤ 64 MiB at N=%d: not measured** (GNU time was not installed).\n", l.N)
		case k.rssMax <= 64<<10:
			fmt.Fprintf(&b, "\n**Peak RSS ≤ 64 MiB at N=%d: met** (%.1f MiB, the maximum over %d runs).\n", l.N, float64(k.rssMax)/1024, k.runs)
		default:
			fmt.Fprintf(&b, "\n**Peak RSS ≤ 64 MiB at N=%d: NOT met** (%.1f MiB, the maximum over %d runs).\n", l.N, float64(k.rssMax)/1024, k.runs)
		}
	}
	return b.String()
}

func sizes(r *Results) string {
	var s []string
	for _, sr := range r.Sizes {
		if sr.KplayOnly {
			s = append(s, fmt.Sprintf("%d (%s, kplay only)", sr.N, sr.Setup))
			continue
		}
		s = append(s, fmt.Sprintf("%d (%s)", sr.N, sr.Setup))
	}
	if r.Bastion != nil {
		s = append(s, fmt.Sprintf("%d behind one bastion (%s)", r.Bastion.N, r.Bastion.Setup))
	}
	return strings.Join(s, ", ")
}

// stepTable renders the per-step medians.
func (r *Results) stepTable() string {
	var b strings.Builder
	b.WriteString("Median time of each step (over hosts and measured runs), and the CPU the command itself costs (measured inside a host, without SSH):\n\n")
	b.WriteString("| N | step | kplay | OpenSSH floor (one `ssh` through the master) | command's own CPU |\n|---:|---|---:|---:|---:|\n")
	for _, sr := range r.Sizes {
		k, o := sr.stat(Kplay), sr.stat(OpenSSH)
		if o.runs > 0 {
			fmt.Fprintf(&b, "| %d | connect (ControlMaster set-up) | – | %.1f ms | – |\n", sr.N, ms(o.connect))
		}
		for i, st := range Steps() {
			kv, ov := "–", "–"
			if i < len(k.steps) && k.runs > 0 {
				kv = fmt.Sprintf("%.1f ms", ms(k.steps[i]))
			}
			if i < len(o.steps) && o.runs > 0 {
				ov = fmt.Sprintf("%.1f ms", ms(o.steps[i]))
			}
			cpu := "–"
			if i < len(sr.CmdCPU) {
				cpu = fmt.Sprintf("%.1f ms", ms(sr.CmdCPU[i]))
			}
			fmt.Fprintf(&b, "| %d | `%s` | %s | %s | %s |\n", sr.N, st.Cmd, kv, ov, cpu)
		}
	}
	for _, sr := range r.Sizes {
		if len(sr.Transport) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\nTransport costs, one operation at a time on one idle host of the N=%d bed (median wall time; mean CPU per operation):\n\n", sr.N)
		b.WriteString("| operation | wall | host CPU | controller CPU |\n|---|---:|---:|---:|\n")
		for _, o := range sr.Transport {
			fmt.Fprintf(&b, "| %s | %.1f ms | %.1f ms | %.1f ms |\n", o.Name, ms(o.Wall), ms(o.HostCPU), ms(o.CtlCPU))
		}
	}
	b.WriteString("\nkplay's step times are those it reports (`kplay run` text output, millisecond resolution); they exclude its connection set-up. " +
		"Ansible does not time tasks without extra callback plugins (not in ansible-core).\n")
	return b.String()
}

// method describes how the numbers were made.
func method(r *Results) string {
	var b strings.Builder
	steps := Steps()
	var cmds []string
	for _, s := range steps {
		cmds = append(cmds, "`"+s.Cmd+"`")
	}
	fmt.Fprintf(&b, "- **Work**: the same %d read-only steps on every host, in order: %s.\n", len(steps), strings.Join(cmds, ", "))
	b.WriteString("- **Hosts**: N local test hosts from package `testbed` (the integration tests' hosts): one network namespace, " +
		"PID/UTS/IPC/mount namespaces and Debian's real OpenSSH sshd per host, on one bridge (a bed of more than 240 hosts has " +
		"cp241 and up on a second /24 on the same bridge). Beds marked `kube` are full kubeadm " +
		"control-plane hosts (kubeadm per host, apiserver stand-ins running); `kube-lite` beds (testbed `AddKubeLite`) have kubeadm on " +
		"PATH and one kubeadm PKI copied to every host, with no apiservers. The hosts share the controller's 2 cores: " +
		"host-side work (sshd, shells, commands) competes with the contender for CPU.\n")
	b.WriteString("- **kplay**: the built binary, `kplay run bench.yaml -i inventory.yaml --forks N` (text output, parsed and checked), " +
		"one shell step per command.\n")
	fmt.Fprintf(&b, "- **Ansible**: `ansible-playbook` from Debian's ansible-core with `forks = N`, `strategy = %s`, `pipelining = True`, "+
		"`ControlMaster=auto`/`ControlPersist=30m` (longer than Ansible's default 60s, so that no master expires between "+
		"tasks on a loaded machine; a fresh ControlPath directory per run, so each run makes its own connections; the masters "+
		"are stopped after the run, outside the timing), `gather_facts: false`, `interpreter_python = /usr/bin/python3` "+
		"(no interpreter discovery), no ssh compression (`-C` dropped from the default `ssh_args`), host keys checked against the "+
		"bed's known_hosts (`StrictHostKeyChecking=yes`). Each step is an `ansible.builtin.command` task: the module Ansible users "+
		"write for a command, which runs the command without a shell and reports rc/stdout; every host must end with ok=5, failed=0.\n",
		r.Config.AnsibleStrategy)
	b.WriteString("- **OpenSSH floor**: the bench driver starts, for every host at once, `ssh -M -f -N` with `ControlPersist=yes` " +
		"(the master's connection set-up and authentication are inside the measured time, as kplay's are), then runs each step " +
		"as a separate `ssh` through that master, in order; the run ends when the last host's last step has returned. The masters " +
		"are stopped after the timing. Outputs are checked.\n")
	b.WriteString("- **Direct reference**: for every host at once, `nsenter` into the host's namespaces runs one `sh` with the five " +
		"commands in order (each its own process, as over SSH); the run ends when the last host is done. It measures what the work " +
		"costs on these shared cores at this N with no SSH at all; it takes part in the interleaved rounds like a contender.\n")
	b.WriteString("- **Fairness**: every contender runs with the same clean environment (`PATH` without pyenv shims, an empty `HOME`, " +
		"`ssh -F /dev/null`), so no controller shell or ssh configuration slows or speeds any of them; the hosts have their own, empty " +
		"`/root` (no `.bashrc`), so the login shell sshd runs each command with starts fast for all contenders; Python on the hosts " +
		"is the system `/usr/bin/python3`.\n")
	b.WriteString("- **Rounds**: interleaved: each round runs every contender once, the starting contender rotating from round to round; " +
		"the first round(s) are a warm-up and not counted; each size reports the median of the measured rounds.\n")
	b.WriteString("- **Counts**: each host's sshd runs with `LogLevel VERBOSE`; a run's `Connection from` lines are its TCP connections, " +
		"its `Accepted publickey` lines its authentications, its `Starting session:` lines its sessions. kplay's one session per host " +
		"is its long-lived shell. The run lock's heartbeat (every 20 s) goes through that shell too: at once when it is idle, else " +
		"started in the background just before the next step's command; only a beat that no command took by the next heartbeat " +
		"(one step holding the shell for over 20 s) gets a session of its own.\n")
	fmt.Fprintf(&b, "- **Keepalive**: beds of more than %d hosts set kplay's `keepalive_interval: 10s` and `keepalive_count_max: 6` "+
		"(a 60 s window for a host that sends nothing at all) in the inventory: at N=300 on 2 cores a live host's sshd has gone "+
		"15 s, the default window, without CPU. Smaller beds keep the default (5 s × 3).\n", keepaliveBedMin)
	b.WriteString("- **CPU**: controller CPU from `wait4` rusage (children included) plus the background ssh masters' `/proc/PID/stat` " +
		"times; host CPU from the hosts' sshd listeners' own and reaped children's times (and what each host's init reaped), " +
		"read before the run and after every per-connection sshd of the run has exited.\n")
	b.WriteString("- **Commands' own CPU**: each command run 20 times in a shell loop inside a host (nsenter, no SSH), minus an empty " +
		"loop, divided by 20 (the per-step column above). The fan-out target subtracts the direct reference's median wall time at the " +
		"largest N (the commands' cost under the same contention; N × the five commands' CPU / cores when direct was not run) from " +
		"kplay's median there.\n")
	b.WriteString("- The machine is a shared VM: numbers move from run to run; compare medians and ratios, not single runs.\n")
	return b.String()
}

// design explains what the numbers come from; the figures it cites are in
// the tables above.
const design = `- **One connection per host for the whole run**, opened in parallel for all hosts (up to ` + "`forks`" + `) and shared by
  the run lock and every step: one TCP connection, one handshake, one authentication per host (counted above from the
  hosts' sshd logs).
- **One long-lived ` + "`sh`" + ` per connection** (remote/shell.go): a session per command costs the host sshd's session
  fork, the user's login shell and kplay's ` + "`env … sh -c`" + ` wrapper, about 30 ms of CPU on this machine, plus two
  round trips (see "Transport costs"). kplay starts one session running ` + "`exec sh`" + ` and writes each command to it
  as ` + "`KPLAY_CMD=TAG sh -c 'CMD' </dev/null`" + `, followed by end markers carrying a fresh random nonce on stdout (with
  the exit status) and stderr. Every command still runs in its own ` + "`sh -c`" + `, with the session's environment and
  working directory, so nothing leaks from one step into the next; the kill tag is in the environment of the command's
  ` + "`sh`" + ` and everything it starts, so a cancelled command is killed as before (the shell first, so that it cannot
  start anything more, then every tagged process); the secret-output filter and stderr redaction apply unchanged.
  Commands with stdin (file writes) or a become password, and commands issued while the shell is busy, still get a
  session of their own.
- **Fewer processes around the steps**: the run lock is taken with the holder inside the quoted script instead of on
  stdin (so it goes through the shell), and without ` + "`dirname`" + ` or ` + "`grep`" + ` processes.
- **The handshake**: Go's x/crypto/ssh with the host key algorithm taken from known_hosts (ed25519 here). The algorithm
  choices measured under "Transport costs" differ little; the handshake's cost on the host is dominated by sshd
  starting a process per connection, not by the cryptography, so kplay keeps Go's defaults (curve25519, with ML-KEM
  hybrid first where the server supports it).
- **Two differences from a session per command**: a command killed by a signal reports exit status 128+n (as any
  shell does) instead of the signal's name; and a command that leaves a background process writing to its stdout
  returns without waiting for that process (a session would wait for it): output arriving between commands makes kplay
  replace the shell, but output arriving during the next command would be counted as that command's. kplay's own
  steps start no such processes.
- **What is left** is CPU on the hosts, most of which any SSH client pays: sshd's per-connection processes (the
  handshake's host CPU under "Transport costs"), one session, and the commands themselves (the ` + "`direct`" + ` rows); kplay's own
  CPU on the controller is a small fraction (see "controller CPU"). Beyond sshd, kplay costs each host its run lock (two
  short scripts: take and release) and, per step, one ` + "`sh -c`" + ` with the end markers (about 3–4 ms of host CPU per
  step, measured with ` + "`true`" + ` steps on one host). From 30 hosts up the two cores are saturated for the whole kplay run
  (in a separate probe of three kplay runs on 30 hosts, /proc/stat idle time sampled every 250 ms stayed at 0–2 %), so kplay's wall time there is the CPU work divided by
  the cores, not waiting: the fan-out itself does not serialize. Where the fan-out target is missed, it is this shared
  CPU (hosts and controller on the same 2 cores), as its line under "Targets" works out.
`

// memory formats /proc/meminfo's "N kB" in GiB.
func memory(s string) string {
	var kb float64
	if _, err := fmt.Sscanf(s, "%f kB", &kb); err != nil || kb <= 0 {
		return s
	}
	return fmt.Sprintf("%.1f GiB", kb/(1<<20))
}

// bastionContenders are the contenders that ran on the bastion bed, in the
// configured order.
func (r *Results) bastionContenders() []string {
	var out []string
	for _, c := range r.Config.Contenders {
		if r.Bastion != nil && r.Bastion.stat(c).runs > 0 {
			out = append(out, c)
		}
	}
	return out
}

// bastionTable is the results table of the bed behind one bastion.
func (r *Results) bastionTable() string {
	sr := r.Bastion
	var b strings.Builder
	b.WriteString("| contender | median wall | min–max | kplay ÷ this | conns at the bastion | auths at the bastion | conns/host | auths/host | sessions/host | controller CPU | bastion CPU | host CPU | peak RSS |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	k := sr.stat(Kplay)
	for _, c := range r.bastionContenders() {
		s := sr.stat(c)
		ratio := "–"
		if k.runs > 0 && c != Kplay {
			ratio = fmt.Sprintf("%.3f (%.1f×)", k.wall.Seconds()/s.wall.Seconds(), s.wall.Seconds()/k.wall.Seconds())
		}
		rss := "–"
		if s.rssMax > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(s.rssMax)/1024)
		}
		fmt.Fprintf(&b, "| %s | %.3f s | %.3f–%.3f s | %s | %s | %s | %s | %s | %s | %.2f s | %.2f s | %.2f s | %s |\n",
			c, s.wall.Seconds(), s.wallMin.Seconds(), s.wallMax.Seconds(), ratio,
			span(s.bastionConnsMin, s.bastionConnsMax), span(s.bastionAuthsMin, s.bastionAuthsMax),
			span(s.connsMin, s.connsMax), span(s.authsMin, s.authsMax), span(s.sessMin, s.sessMax),
			s.ctlCPU.Seconds(), s.bastionCPU.Seconds(), s.hostCPU.Seconds(), rss)
	}
	return b.String()
}

// bastionLabel names a contender in the bastion section's sentences.
func bastionLabel(c string) string {
	switch c {
	case Ansible:
		return "Ansible"
	case OpenSSH:
		return "OpenSSH (ProxyJump + ControlMaster)"
	}
	return c
}

// bastionFindings are, for the bastion bed, the wall-time ratios kplay ÷
// Ansible and kplay ÷ OpenSSH (medians), what each contender opened at the
// bastion per host, and whether kplay made one connection and one
// authentication there in every run, as Markdown list items.
func (r *Results) bastionFindings() []string {
	sr := r.Bastion
	k := sr.stat(Kplay)
	var out []string
	for _, c := range []string{Ansible, OpenSSH} {
		o := sr.stat(c)
		if k.runs == 0 || o.runs == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("kplay ÷ %s, median wall time: %.3f s ÷ %.3f s = %.3f (%s takes %.1f× kplay's time)",
			bastionLabel(c), k.wall.Seconds(), o.wall.Seconds(), k.wall.Seconds()/o.wall.Seconds(), bastionLabel(c), o.wall.Seconds()/k.wall.Seconds()))
	}
	for _, c := range r.bastionContenders() {
		s := sr.stat(c)
		out = append(out, fmt.Sprintf("%s at the bastion: %s TCP connection(s) and %s authentication(s) per run for %d hosts (%s and %s per host)",
			bastionLabel(c), span(s.bastionConnsMin, s.bastionConnsMax), span(s.bastionAuthsMin, s.bastionAuthsMax), sr.N,
			perHost(s.bastionConnsMin, s.bastionConnsMax, sr.N), perHost(s.bastionAuthsMin, s.bastionAuthsMax, sr.N)))
	}
	if k.runs > 0 {
		ok := k.bastionConnsMin == 1 && k.bastionConnsMax == 1 && k.bastionAuthsMin == 1 && k.bastionAuthsMax == 1
		state := "met"
		if !ok {
			state = "**NOT met**"
		}
		out = append(out, fmt.Sprintf("kplay: exactly one TCP connection and one authentication at the bastion per run: %s (connections %s, authentications %s, over %d runs)",
			state, span(k.bastionConnsMin, k.bastionConnsMax), span(k.bastionAuthsMin, k.bastionAuthsMax), k.runs))
	}
	return out
}

// perHost formats a count per run (min–max) divided by n hosts.
func perHost(lo, hi, n int) string {
	if lo == hi {
		return fmt.Sprintf("%.2f", float64(lo)/float64(n))
	}
	return fmt.Sprintf("%.2f–%.2f", float64(lo)/float64(n), float64(hi)/float64(n))
}

// bastionSection renders "Behind one bastion (N=…)": the table, the ratios
// and how the bed was set up.
func (r *Results) bastionSection() string {
	sr := r.Bastion
	if sr == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Behind one bastion (N=%d)\n\n", sr.N)
	fmt.Fprintf(&b, "Issue 11: %d %s hosts reachable only through one bastion, the same five steps, %d warm-up round(s), then the median of %d, "+
		"in interleaved rounds as above.\n\n", sr.N, sr.Setup, r.Config.Warmup, r.Config.Runs)
	b.WriteString(r.bastionTable())
	b.WriteString("\n")
	for _, f := range r.bastionFindings() {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	b.WriteString("\n`conns at the bastion` and `auths at the bastion` are the `Connection from` and `Accepted publickey` lines the bastion's " +
		"sshd logged during one run, all hosts together (min–max over runs); `conns/host`, `auths/host` and `sessions/host` are " +
		"counted at the hosts as in the main table. `bastion CPU` is the CPU spent inside the bastion during a run (its sshd and " +
		"what sshd started), median; `host CPU` leaves it out.\n\n")
	b.WriteString("The bastion (testbed `Options.Bastion`) is a jump host with its own sshd in its own network namespace, with one " +
		"interface on the hosts' bridge and one on a point-to-point link to the controller; the controller has no address on the " +
		"bridge and the hosts' subnets are unreachable from it, so every contender goes through the bastion. All three read the " +
		"bed's OpenSSH client config (testbed `Bed.SSHConfigPath`: `Host bastion`, `ProxyJump bastion` for every host, the bed's " +
		"key and known_hosts): kplay with `--ssh-config`, Ansible and the OpenSSH floor with `ssh -F` in place of `-F /dev/null`, " +
		"everything else as on the direct beds. kplay carries every host as a channel over one connection to the bastion " +
		"(README, \"Behind a bastion\"); OpenSSH's `ProxyJump` starts an `ssh -W` to the bastion for each connection it makes to a " +
		"host, and a ControlMaster multiplexes the sessions to its own target, not the hop. The counts above are what the sshd " +
		"logs show, not these expectations. The direct reference, the commands' own CPU, the transport costs and the CPU profile are measured on the " +
		"direct beds only.\n")
	b.WriteString("\nAll runs, in seconds (measured rounds, in order):\n\n")
	for _, c := range r.bastionContenders() {
		var ws []string
		for _, w := range sr.stat(c).walls {
			ws = append(ws, fmt.Sprintf("%.3f", w.Seconds()))
		}
		fmt.Fprintf(&b, "- N=%d behind the bastion, %s: %s\n", sr.N, c, strings.Join(ws, ", "))
	}
	return b.String()
}
