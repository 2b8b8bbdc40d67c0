//go:build e2e

// The incident kplay exists for: a real 3-node control plane whose leaf
// certificates have ALREADY expired, recovered by the shipped renew.yaml.

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// expiredValidity is the leaf certificates' validity on the expired beds:
// long enough for a bed to start and for data to be written, short enough
// to wait out.
const expiredValidity = 2 * time.Minute

// expiredBed starts three real control-plane hosts with short-lived leaf
// certificates, writes a ConfigMap, and waits (on the certificates' own
// NotAfter, not a fixed sleep) until every leaf certificate has expired
// while the cluster runs. It returns the bed and the ConfigMap's name.
func expiredBed(t *testing.T, controllers bool) (*testbed.Bed, string) {
	t.Helper()
	prebuild(t)
	t0 := time.Now()
	b := testbed.Require(t, testbed.Options{Hosts: 3, Real: true, Controllers: controllers, CertValidity: expiredValidity, KubeletPeriod: e2ePeriod})
	t.Logf("real control plane ready in %v", time.Since(t0).Round(100*time.Millisecond))
	// Data written before the expiry, through the API into etcd.
	api, err := b.Hosts[0].KubeClient(testbed.SuperAdminConf)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("kplay-before-expiry-%d", time.Now().UnixNano())
	code, body, err := api.Do(t.Context(), "POST", "/api/v1/namespaces/default/configmaps",
		map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": map[string]string{"written": time.Now().UTC().Format(time.RFC3339)}})
	api.CloseIdleConnections()
	if err != nil || code != 201 {
		t.Fatalf("writing ConfigMap %s before the expiry: %d %v %s (the bed took %v to start; validity %v)", name, code, err, body, time.Since(t0), expiredValidity)
	}
	// Wait until every leaf certificate of every host has expired.
	var last time.Time
	for _, h := range b.Hosts {
		for _, c := range pkiCerts(t, h) {
			if !c.IsCA && c.NotAfter.After(last) {
				last = c.NotAfter
			}
		}
	}
	wait := time.Until(last) + 2*time.Second
	t.Logf("ConfigMap %s written; waiting %v until the last leaf certificate expires (%s)", name, wait.Round(time.Second), last.UTC().Format(time.RFC3339))
	select {
	case <-time.After(wait):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
	// The user's symptom: x509 "certificate has expired" from the API.
	if c, err := b.Hosts[0].KubeClient(testbed.AdminConf); err == nil {
		_, _, err = c.Do(t.Context(), "GET", "/api", nil)
		c.CloseIdleConnections()
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("GET /api after the expiry: %v, want an x509 expiry error", err)
		}
		t.Logf("after the expiry, as kubectl sees it: %v", err)
	}
	// And the incident's trigger: a member restarted after the expiry
	// (a node reboot) cannot rejoin peers that present expired
	// certificates. The kubelet stand-in starts it again.
	cp1 := b.Hosts[0]
	if pid := cp1.PodPID("etcd"); pid == 0 {
		t.Fatal("cp1: no etcd process")
	} else if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("cp1: stopping etcd: %v", err)
	} else {
		deadline := time.Now().Add(time.Minute)
		for cp1.PodPID("etcd") == 0 || cp1.PodPID("etcd") == pid {
			if time.Now().After(deadline) {
				t.Fatal("cp1: the kubelet stand-in did not start etcd again")
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("cp1's etcd restarted after the expiry (pid %d -> %d), as after a node reboot", pid, cp1.PodPID("etcd"))
	}
	return b, name
}

// prebuild builds (or finds cached) the real control plane's binaries
// before a bed with short-lived certificates starts: on a fresh machine
// the first build takes half an hour, longer than the certificates live.
func prebuild(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Minute)
	defer cancel()
	for _, c := range [][]string{{"k8s.sh", "kubeadm"}, {"k8s.sh", "kube-apiserver"}, {"k8s.sh", "kube-controller-manager"}, {"k8s.sh", "kube-scheduler"}, {"etcd.sh"}} {
		cmd := exec.CommandContext(ctx, "bash", append([]string{"../testbed/build/" + c[0]}, c[1:]...)...)
		cmd.Env = append(os.Environ(), "K8S_VERSION="+testbed.KubernetesVersion, "ETCD_VERSION="+testbed.EtcdVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %v: %v\n%s", c, err, lastN(string(out), 2000))
		}
	}
}

// TestE2EExpiredClusterRecovered: the shipped renew.yaml, with no extra
// flag, recovers a 3-node control plane (etcd, apiserver, controller-manager,
// scheduler) whose leaf certificates all expired while it ran: exit 0,
// every leaf renewed, 6443/2379/2380 serve the new certificates, every etcd
// member healthy and every apiserver ready, the data written before the
// expiry read back, the fetched ~/.kube/config works; etcd was not restarted.
func TestE2EExpiredClusterRecovered(t *testing.T) {
	b, cm := expiredBed(t, true)
	home := t.TempDir()
	env := []string{"HOME=" + home}

	r := run(t, env, "check", "-i", b.InventoryPath, "--within", "30d")
	if r.code != 3 || !strings.Contains(r.stdout, "EXPIRED") || !strings.Contains(r.stdout, "kplay run playbooks/renew.yaml -i") {
		t.Errorf("kplay check on the expired cluster: exit %d, want 3, EXPIRED and the recovery command:\n%s", r.code, r.stdout)
	}
	etcdPIDs := map[string]int{}
	for _, h := range b.Hosts {
		etcdPIDs[h.Name] = h.PodPID("etcd")
	}
	start := time.Now()
	r = run(t, env, "run", "../playbooks/renew.yaml", "-i", b.InventoryPath, "--output", "json")
	if r.code != 0 {
		t.Fatalf("renew.yaml on the expired cluster: exit %d\n%s", r.code, lastN(r.stderr, 3000))
	}
	t.Logf("E2E EXPIRED: renew.yaml recovered the expired cluster in %.1fs", time.Since(start).Seconds())
	rep := decodeReport(t, r.stdout)
	took := restartDurations(t, rep)
	for _, h := range rep.Hosts {
		if h.Status != "changed" {
			t.Errorf("%s: status %q, want changed", h.Name, h.Status)
		}
		if _, ok := took[h.Name]["kube-apiserver"]; !ok || len(took[h.Name]) != 3 {
			t.Errorf("%s: restarted %v, want kube-apiserver, kube-controller-manager and kube-scheduler", h.Name, took[h.Name])
		}
		if _, ok := took[h.Name]["etcd"]; ok {
			t.Errorf("%s: etcd was restarted", h.Name)
		}
	}
	t.Logf("restarts per host: %v", took)
	for _, h := range b.Hosts {
		if pid := h.PodPID("etcd"); pid != etcdPIDs[h.Name] {
			t.Errorf("%s: etcd pid %d -> %d: restarted, though it rereads its certificates", h.Name, etcdPIDs[h.Name], pid)
		}
		for name, c := range pkiCerts(t, h) {
			if left := time.Until(c.NotAfter); left < 360*24*time.Hour {
				t.Errorf("%s %s: valid for %v after the recovery, want ≥ 360 days", h.Name, name, left.Round(time.Hour))
			}
		}
		checkRunningOnDisk(t, h, true)
	}
	checkServed(t, b, 360*24*time.Hour)
	var members []string
	for _, h := range b.Hosts {
		ec, err := h.EtcdClient()
		if err != nil {
			t.Fatal(err)
		}
		if err := ec.Health(t.Context()); err != nil {
			t.Errorf("%s: etcd member not healthy after the recovery: %v", h.Name, err)
		}
		if m, err := ec.Members(t.Context()); err == nil {
			sort.Strings(m)
			members = m
		}
		ec.CloseIdleConnections()
		api, err := h.KubeClient(testbed.AdminConf)
		if err != nil {
			t.Fatal(err)
		}
		if err := api.Readyz(t.Context()); err != nil {
			t.Errorf("%s: apiserver not ready after the recovery: %v", h.Name, err)
		}
		api.CloseIdleConnections()
	}
	if strings.Join(members, ",") != "cp1,cp2,cp3" {
		t.Errorf("etcd members %v, want cp1, cp2, cp3", members)
	}
	// The data written before the expiry, read through every apiserver with
	// the fetched ~/.kube/config.
	cfg := filepath.Join(home, ".kube", "config")
	for _, h := range b.Hosts {
		c, err := testbed.NewKubeClient(cfg, fmt.Sprintf("https://%s:%d", h.Address, testbed.APIServerPort))
		if err != nil {
			t.Fatal(err)
		}
		code, body, err := c.Do(t.Context(), "GET", "/api/v1/namespaces/default/configmaps/"+cm, nil)
		c.CloseIdleConnections()
		var got struct {
			Data map[string]string `json:"data"`
		}
		if err != nil || code != 200 || json.Unmarshal(body, &got) != nil || got.Data["written"] == "" {
			t.Errorf("%s: reading ConfigMap %s written before the expiry: %d %v %s", h.Name, cm, code, err, body)
		}
	}
	kubectl := kubectlBin(t)
	cmd := exec.CommandContext(t.Context(), kubectl, "get", "configmap", cm, "-o", "name", "--request-timeout=10s")
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG=")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "configmap/"+cm) {
		t.Errorf("HOME=%s kubectl get configmap %s: %v\n%s", home, cm, err, out)
	}
	if r := run(t, env, "check", "-i", b.InventoryPath, "--within", "30d"); r.code != 0 {
		t.Errorf("kplay check after the recovery: exit %d\n%s", r.code, r.stdout)
	}
}

// TestE2EExpiredRestartFailureKeepsCluster: on an expired cluster, the
// restart fails on cp2 (its apiserver manifest broken). The renewal is
// not rolled back onto expired certificates anywhere, the etcd cluster
// keeps all three members, cp1 serves, cp3 is renewed and untouched by the
// restart play, and the report says each host's true state and the command
// that finishes the run.
func TestE2EExpiredRestartFailureKeepsCluster(t *testing.T) {
	b, _ := expiredBed(t, false)
	pb := renewWithFault(t)
	r := run(t, []string{"HOME=" + t.TempDir()}, "run", pb, "-i", b.InventoryPath, "--var", "fault_on=cp2", "--output", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, lastN(r.stderr, 2000))
	}
	rep := decodeReport(t, r.stdout)
	h2 := rep.host(t, "cp2")
	if h2.Status != "failed" || !strings.Contains(h2.Error, "restart") || !strings.Contains(h2.State, "kept on purpose") {
		t.Errorf("cp2: status %q, state %q, error %q; want failed in the restart, renewal kept on purpose", h2.Status, h2.State, h2.Error)
	}
	for _, st := range h2.Steps {
		if st.Type == "renew_certs" && (st.Status != "changed" || !strings.Contains(st.Rollback, "not rolled back on purpose")) {
			t.Errorf("cp2 renew certs: status %q rollback %q; want kept", st.Status, st.Rollback)
		}
	}
	if s := rep.host(t, "cp1").Status; s != "changed" {
		t.Errorf("cp1: status %q, want changed", s)
	}
	if s := rep.host(t, "cp3").Status; s != "changed" {
		t.Errorf("cp3: status %q, want changed (renewed by the first play)", s)
	}
	if !strings.Contains(rep.Resume, "--limit cp2,cp3") {
		t.Errorf("resume %q, want the command that finishes cp2 and cp3", rep.Resume)
	}
	t.Logf("cp2 state: %s\nresume: %s", h2.State, rep.Resume)
	// No expired certificate was put back, anywhere.
	for _, h := range b.Hosts {
		for name, c := range pkiCerts(t, h) {
			if time.Until(c.NotAfter) < 360*24*time.Hour {
				t.Errorf("%s %s: expires %s: an expired certificate is on disk after the run", h.Name, name, c.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
	// The cluster is no smaller than the renewal made it: all three etcd
	// members healthy (the one restarted after the expiry rejoined), cp1's
	// apiserver ready.
	for _, h := range b.Hosts {
		ec, err := h.EtcdClient()
		if err != nil {
			t.Fatal(err)
		}
		if err := ec.Health(t.Context()); err != nil {
			t.Errorf("%s: etcd member not healthy: %v", h.Name, err)
		}
		ec.CloseIdleConnections()
	}
	api, err := b.Hosts[0].KubeClient(testbed.AdminConf)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Readyz(t.Context()); err != nil {
		t.Errorf("cp1's apiserver is not ready: %v", err)
	}
}
