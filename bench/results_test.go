package bench

import (
	"strings"
	"testing"
	"time"
)

// fakeSize is a bed with one kplay run per (cpu, rss) pair, and, unless
// kplayOnly, one run of every other contender.
func fakeSize(n int, kplayOnly bool, cpu time.Duration, rssKiB int64) *SizeResult {
	m := Measurement{Wall: time.Duration(n) * 100 * time.Millisecond, CtlCPU: cpu, MaxRSSKiB: rssKiB, HostCPU: time.Second,
		Conns: [2]int{1, 1}, Auths: [2]int{1, 1}, Sessions: [2]int{1, 1}}
	sr := &SizeResult{N: n, Setup: "kube-lite", KplayOnly: kplayOnly, Cores: 2, Runs: map[string][]Measurement{Kplay: {m, m, m}}}
	if !kplayOnly {
		o := m
		o.Wall *= 2
		sr.Runs[OpenSSH] = []Measurement{o, o, o}
		d := m
		d.Wall /= 2
		sr.Runs[Direct] = []Measurement{d, d, d}
	}
	return sr
}

// TestScaleReport renders made-up results with a kplay-only size: the
// per-host columns, the scale section and its targets, the 64 MiB line at
// the largest N, the fan-out target on the sizes every contender ran, and
// the link to the real control plane's figures.
func TestScaleReport(t *testing.T) {
	r := &Results{
		Config: Config{Runs: 3, Warmup: 1, Contenders: []string{Kplay, OpenSSH, Direct}, KplayOnly: []int{300}},
		Sizes: []*SizeResult{
			fakeSize(3, false, 80*time.Millisecond, 10<<10),
			fakeSize(30, false, 410*time.Millisecond, 16<<10),
			fakeSize(100, false, 1110*time.Millisecond, 28<<10),
			fakeSize(300, true, 3100*time.Millisecond, 60<<10),
		},
	}
	md := r.Markdown()
	for _, want := range []string{
		"| controller CPU per host |",
		"| 300 | kplay (alone) | 30.000 s |",
		"| 30 | kplay | 3.000 s | 3.000–3.000 s | – | 1 | 1 | 1 | 0.41 s | 13.67 ms |",
		"| 300 | kube-lite, kplay alone | 30.000 s | 3.10 s | 10.33 ms | 9.95 ms | 60.0 MiB; 60.0 MiB | 205 KiB | 164 KiB |",
		"**Peak RSS ≤ 64 MiB at N=300: met** (60.0 MiB",
		"kplay peak RSS ≤ 64 MiB at N=300: met",
		"kplay's controller CPU per host flat from N=3 to N=300: met",
		"kplay's peak RSS per host flat from N=3 to N=300: met",
		"at N=100, ≤ 2× the N=3 time beyond the commands' own cost",
		"300 (kube-lite, kplay only)",
		"[RESULTS-e2e.md](RESULTS-e2e.md)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}

	// Memory that grows faster per host, and too much of it.
	r.Sizes[3] = fakeSize(300, true, 3100*time.Millisecond, 90<<10)
	md = r.Markdown()
	for _, want := range []string{
		"**Peak RSS ≤ 64 MiB at N=300: NOT met** (90.0 MiB",
		"kplay's peak RSS per host flat from N=3 to N=300: **NOT met**",
		"N=300: 307 KiB/host, 317 KiB per added host (NOT met)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
}

// fakeBastion is a bed of n hosts behind one bastion: kplay with kplayConns
// connections and one authentication at the bastion per run, Ansible and
// OpenSSH with one of each per host, three runs each.
func fakeBastion(n, kplayConns int) *SizeResult {
	one := [2]int{1, 1}
	k := Measurement{Wall: 2 * time.Second, CtlCPU: 300 * time.Millisecond, MaxRSSKiB: 16 << 10, HostCPU: 9 * time.Second,
		Conns: one, Auths: one, Sessions: one, BastionConns: kplayConns, BastionAuths: 1, BastionCPU: 250 * time.Millisecond}
	a := Measurement{Wall: 40 * time.Second, CtlCPU: 30 * time.Second, MaxRSSKiB: 60 << 10, HostCPU: 50 * time.Second,
		Conns: one, Auths: one, Sessions: [2]int{5, 5}, BastionConns: n, BastionAuths: n, BastionCPU: 4 * time.Second}
	o := Measurement{Wall: 5 * time.Second, CtlCPU: 3 * time.Second, HostCPU: 12 * time.Second,
		Conns: one, Auths: one, Sessions: [2]int{5, 5}, BastionConns: n, BastionAuths: n, BastionCPU: 3 * time.Second}
	slow := k
	slow.Wall = 2500 * time.Millisecond
	return &SizeResult{N: n, Setup: "kube-lite", Bastion: true, Cores: 2, Runs: map[string][]Measurement{
		Kplay: {k, slow, k}, Ansible: {a, a, a}, OpenSSH: {o, o, o},
	}}
}

// TestBastionReport renders made-up results with a bed behind a bastion:
// its section with the counts at the bastion and at the hosts, the
// ratios kplay ÷ Ansible and kplay ÷ OpenSSH from the medians, the check of
// kplay's one connection to the bastion (met, then not), and the console
// summary. Results without a bastion bed have no such section.
func TestBastionReport(t *testing.T) {
	r := &Results{
		Config:  Config{Runs: 3, Warmup: 1, Contenders: []string{Kplay, Ansible, OpenSSH, Direct}, BastionHosts: 30},
		Sizes:   []*SizeResult{fakeSize(3, false, 80*time.Millisecond, 10<<10)},
		Bastion: fakeBastion(30, 1),
	}
	md := r.Markdown()
	for _, want := range []string{
		"Sizes: 3 (kube-lite), 30 behind one bastion (kube-lite);",
		"\n## Behind one bastion (N=30)\n",
		"| contender | median wall | min–max | kplay ÷ this | conns at the bastion | auths at the bastion | conns/host | auths/host | sessions/host | controller CPU | bastion CPU | host CPU | peak RSS |",
		"| kplay | 2.000 s | 2.000–2.500 s | – | 1 | 1 | 1 | 1 | 1 | 0.30 s | 0.25 s | 9.00 s | 16.0 MiB |",
		"| ansible | 40.000 s | 40.000–40.000 s | 0.050 (20.0×) | 30 | 30 | 1 | 1 | 5 | 30.00 s | 4.00 s | 50.00 s | 60.0 MiB |",
		"| openssh | 5.000 s | 5.000–5.000 s | 0.400 (2.5×) | 30 | 30 | 1 | 1 | 5 | 3.00 s | 3.00 s | 12.00 s | – |",
		"- kplay ÷ Ansible, median wall time: 2.000 s ÷ 40.000 s = 0.050 (Ansible takes 20.0× kplay's time)\n",
		"- kplay ÷ OpenSSH (ProxyJump + ControlMaster), median wall time: 2.000 s ÷ 5.000 s = 0.400 (OpenSSH (ProxyJump + ControlMaster) takes 2.5× kplay's time)\n",
		"- OpenSSH (ProxyJump + ControlMaster) at the bastion: 30 TCP connection(s) and 30 authentication(s) per run for 30 hosts (1.00 and 1.00 per host)\n",
		"- kplay at the bastion: 1 TCP connection(s) and 1 authentication(s) per run for 30 hosts (0.03 and 0.03 per host)\n",
		"- kplay: exactly one TCP connection and one authentication at the bastion per run: met (connections 1, authentications 1, over 3 runs)\n",
		"- N=30 behind the bastion, kplay: 2.000, 2.500, 2.000\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	// The direct reference does not run behind the bastion; the section
	// comes after the scale section and before the design notes.
	if sec := md[strings.Index(md, "## Behind one bastion"):strings.Index(md, "## How kplay gets there")]; strings.Contains(sec, "| direct |") {
		t.Errorf("bastion section has a direct row:\n%s", sec)
	}
	sum := r.Summary()
	for _, want := range []string{"Behind one bastion (N=30):", "| openssh | 5.000 s |", "kplay ÷ Ansible, median wall time: 2.000 s ÷ 40.000 s = 0.050"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}

	// A kplay run that opened a second connection to the bastion.
	r.Bastion.Runs[Kplay][1].BastionConns = 2
	md = r.Markdown()
	for _, want := range []string{
		"| kplay | 2.000 s | 2.000–2.500 s | – | 1–2 | 1 |",
		"- kplay at the bastion: 1–2 TCP connection(s) and 1 authentication(s) per run for 30 hosts (0.03–0.07 and 0.03 per host)\n",
		"at the bastion per run: **NOT met** (connections 1–2, authentications 1, over 3 runs)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}

	r.Bastion = nil
	if md := r.Markdown(); strings.Contains(md, "bastion") {
		t.Errorf("RESULTS.md without a bastion bed mentions one")
	}
}
