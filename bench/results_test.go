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
