package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// TestBenchQuick runs the benchmark driver end to end on two light kube
// hosts, one round, and checks what it measured: every contender's outputs
// were verified by the driver, kplay made exactly one connection, one
// authentication and (with its long-lived shell) one session per host,
// and the report renders. Ansible runs only where ansible-playbook is
// installed (make bench installs it).
func TestBenchQuick(t *testing.T) {
	if reason := testbed.Missing(testbed.Options{}); reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run test hosts: %s (CI=true, so integration tests must not skip)", reason)
		}
		t.Skipf("SKIP: cannot run test hosts: %s; run as root after make deps (sudo make bench)", reason)
	}
	bin := filepath.Join(t.TempDir(), "kplay")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/kplay/kplay/cmd/kplay").CombinedOutput(); err != nil {
		t.Fatalf("building kplay: %v\n%s", err, out)
	}
	contenders := []string{Kplay, OpenSSH, Direct}
	if _, err := exec.LookPath("ansible-playbook"); err == nil {
		contenders = append(contenders, Ansible)
	} else {
		t.Log("ansible-playbook not installed: measuring kplay and OpenSSH only")
	}
	res, err := Run(t.Context(), Config{
		Sizes: []int{2}, Runs: 1, Warmup: 0, Contenders: contenders, KplayBin: bin,
		FullKubeMax: 0, CmdCPULoops: 2, TransportReps: 2, Profile: true, WorkDir: t.TempDir(), Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sizes) != 1 || res.Sizes[0].Setup != "kube-lite" {
		t.Fatalf("sizes = %+v", res.Sizes)
	}
	sr := res.Sizes[0]
	if d := sr.Runs[Direct]; len(d) != 1 || d[0].Wall <= 0 || d[0].HostCPU <= 0 {
		t.Errorf("direct reference: %+v, want one run with wall time and the commands' CPU", d)
	}
	for _, c := range contenders {
		if c == Direct {
			continue
		}
		ms := sr.Runs[c]
		if len(ms) != 1 {
			t.Fatalf("%s: %d runs, want 1", c, len(ms))
		}
		m := ms[0]
		if m.Wall <= 0 || m.Wall > 5*time.Minute {
			t.Errorf("%s: wall %v", c, m.Wall)
		}
		if m.Conns != [2]int{1, 1} || m.Auths != [2]int{1, 1} {
			t.Errorf("%s: connections %v, authentications %v per host, want exactly 1", c, m.Conns, m.Auths)
		}
		if m.HostCPU <= 0 {
			t.Errorf("%s: host CPU %v", c, m.HostCPU)
		}
	}
	k := sr.Runs[Kplay][0]
	if k.Sessions != [2]int{1, 1} {
		t.Errorf("kplay: %v sessions per host, want 1 (its long-lived shell)", k.Sessions)
	}
	if k.CtlCPU <= 0 {
		t.Errorf("kplay: controller CPU %v", k.CtlCPU)
	}
	if _, err := os.Stat(gnuTime); err == nil && k.MaxRSSKiB <= 0 {
		t.Errorf("kplay: peak RSS %d KiB with GNU time installed", k.MaxRSSKiB)
	}
	if o := sr.Runs[OpenSSH][0]; o.Sessions != [2]int{5, 5} {
		t.Errorf("openssh: %v sessions per host, want 5 (one per step)", o.Sessions)
	}
	for i, st := range k.StepTimes {
		if len(st) != 2 {
			t.Errorf("kplay step %d: %d host times, want 2", i, len(st))
		}
	}
	if len(sr.Transport) != 10 {
		t.Errorf("transport costs: %d operations, want 10: %+v", len(sr.Transport), sr.Transport)
	}
	for _, o := range sr.Transport {
		if o.Wall <= 0 {
			t.Errorf("transport %q: wall %v", o.Name, o.Wall)
		}
	}
	if !strings.Contains(sr.Profile, "flat%") {
		t.Errorf("kplay CPU profile: %q, want go tool pprof -top output", sr.Profile)
	}
	if len(sr.CmdCPU) != len(Steps()) {
		t.Errorf("command CPU: %v", sr.CmdCPU)
	}
	md := res.Markdown()
	for _, want := range []string{"| 2 | kplay |", "| 2 | openssh |", "| 2 | direct |", "## Targets", "## Method", "kubeadm version -o short"} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	t.Log(res.Summary())
}
