package integration

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// podPIDs are the pids of the control-plane processes running on h (0: not
// running).
func podPIDs(h *testbed.Host) map[string]int {
	m := map[string]int{}
	for _, comm := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		m[comm] = h.PodPID(comm)
	}
	return m
}

// TestScheduledRenewChangesNothing (issue 15, item 1): the shipped
// renew-scheduled.yaml, on kubeadm hosts (real sshd, real kubeadm PKI)
// whose certificates expire in over a year, changes nothing on the hosts:
// no backup, no renewed certificate, no restarted pod; exit 0. Run again,
// it does not rewrite the kubeconfig either, and the recap says there was
// nothing to do.
func TestScheduledRenewChangesNothing(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2, Kube: true, CertValidity: 400 * 24 * time.Hour})
	home := t.TempDir()
	env := []string{"HOME=" + home}
	before := map[string]map[string]string{}
	pids := map[string]map[string]int{}
	for _, h := range b.Hosts {
		before[h.Name] = snapshot(t, h)
		pids[h.Name] = podPIDs(h)
		if pids[h.Name]["kube-apiserver"] == 0 {
			t.Fatalf("%s: no kube-apiserver runs", h.Name)
		}
	}

	r := run(t, env, "run", "../playbooks/renew-scheduled.yaml", "-i", b.InventoryPath, "--output", "json")
	if r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	rep := decodeReport(t, r.stdout)
	for _, h := range b.Hosts {
		hr := rep.host(t, h.Name)
		for _, s := range hr.Steps {
			// The first run writes the kubeconfig, which did not exist (on
			// the first host: run_once).
			wantChange := s.Type == "fetch_admin_conf" && h == b.Hosts[0]
			if s.Changed != wantChange || (s.Type == "renew_certs" && s.Status != "skipped") {
				t.Errorf("%s: step %s: status %s changed %v (%s) %q %s", h.Name, s.Name, s.Status, s.Changed, s.Message, s.Details, s.Data)
			}
		}
		if d := diffSnapshots(before[h.Name], snapshot(t, h)); len(d) > 0 {
			t.Errorf("%s: the host changed:\n%s", h.Name, strings.Join(d, "\n"))
		}
		if got := podPIDs(h); !maps.Equal(got, pids[h.Name]) {
			t.Errorf("%s: pods restarted: %v, before %v\n%s", h.Name, got, pids[h.Name], kubeletLog(h))
		}
	}

	kc := filepath.Join(home, ".kube", "config")
	st0, err := os.Stat(kc)
	if err != nil {
		t.Fatalf("the first run wrote no kubeconfig: %v", err)
	}
	r = run(t, env, "run", "../playbooks/renew-scheduled.yaml", "-i", b.InventoryPath)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to do") {
		t.Fatalf("second run: exit %d, want 0 and \"nothing to do\" in the recap\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if st1, err := os.Stat(kc); err != nil || !st1.ModTime().Equal(st0.ModTime()) {
		t.Errorf("the second run rewrote %s (%v)", kc, err)
	}
	if m, _ := filepath.Glob(kc + ".kplay-backup-*"); len(m) > 0 {
		t.Errorf("kubeconfig backups kept although nothing changed: %v", m)
	}
	for _, h := range b.Hosts {
		if d := diffSnapshots(before[h.Name], snapshot(t, h)); len(d) > 0 {
			t.Errorf("%s: the host changed:\n%s", h.Name, strings.Join(d, "\n"))
		}
		if got := podPIDs(h); !maps.Equal(got, pids[h.Name]) {
			t.Errorf("%s: pods restarted: %v, before %v\n%s", h.Name, got, pids[h.Name], kubeletLog(h))
		}
	}
}

// kubeletLog is the tail of the host's kubelet stand-in log, to say why a
// pod restarted.
func kubeletLog(h *testbed.Host) string {
	b, err := os.ReadFile(h.Path("/var/log/kubelet.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "kubelet log:\n" + strings.Join(lines[max(0, len(lines)-15):], "\n")
}
