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
// and the report renders. Then the same on two hosts behind one bastion:
// the bastion's sshd log shows kplay's one connection and one
// authentication there, and one per host for the OpenSSH floor (ProxyJump
// per ControlMaster). Ansible runs only where ansible-playbook is
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
		Sizes: []int{2}, BastionHosts: 2, Runs: 1, Warmup: 0, Contenders: contenders, KplayBin: bin,
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
	checkBastion(t, res, contenders)
	md := res.Markdown()
	for _, want := range []string{"| 2 | kplay |", "| 2 | openssh |", "| 2 | direct |", "## Targets", "## Method", "kubeadm version -o short",
		"## Behind one bastion (N=2)", "kplay: exactly one TCP connection and one authentication at the bastion per run: met"} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	t.Log(res.Summary())
}

// checkBastion checks TestBenchQuick's bed behind the bastion: one run of
// every contender but the direct reference, one connection, one
// authentication per host at the hosts, and at the bastion what its sshd
// logged: kplay one connection and one authentication for both hosts, the
// OpenSSH floor one of each per host (each master's ProxyJump).
func checkBastion(t *testing.T, res *Results, contenders []string) {
	t.Helper()
	sr := res.Bastion
	if sr == nil || !sr.Bastion || sr.N != 2 {
		t.Fatalf("bastion bed: %+v, want N=2 behind a bastion", sr)
	}
	if d := sr.Runs[Direct]; len(d) != 0 {
		t.Errorf("direct reference ran behind the bastion: %+v", d)
	}
	for _, c := range contenders {
		if c == Direct {
			continue
		}
		ms := sr.Runs[c]
		if len(ms) != 1 {
			t.Fatalf("%s behind the bastion: %d runs, want 1", c, len(ms))
		}
		m := ms[0]
		t.Logf("%s behind the bastion: %v, bastion connections %d, authentications %d, bastion CPU %v",
			c, m.Wall, m.BastionConns, m.BastionAuths, m.BastionCPU)
		if m.Conns != [2]int{1, 1} || m.Auths != [2]int{1, 1} {
			t.Errorf("%s behind the bastion: connections %v, authentications %v per host, want exactly 1", c, m.Conns, m.Auths)
		}
		if m.BastionConns < 1 || m.BastionAuths < 1 {
			t.Errorf("%s behind the bastion: %d connections, %d authentications at the bastion, want at least 1 (no other way to the hosts)",
				c, m.BastionConns, m.BastionAuths)
		}
		if m.BastionCPU <= 0 {
			t.Errorf("%s behind the bastion: bastion CPU %v", c, m.BastionCPU)
		}
	}
	if k := sr.Runs[Kplay][0]; k.BastionConns != 1 || k.BastionAuths != 1 {
		t.Errorf("kplay behind the bastion: %d connections, %d authentications at the bastion, want 1 and 1", k.BastionConns, k.BastionAuths)
	}
	if o := sr.Runs[OpenSSH][0]; o.BastionConns != 2 || o.BastionAuths != 2 {
		t.Errorf("openssh behind the bastion: %d connections, %d authentications at the bastion, want 2 and 2 (one ProxyJump per master)",
			o.BastionConns, o.BastionAuths)
	}
}
