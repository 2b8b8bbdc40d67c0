//go:build e2e

package integration

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// TestE2EBastionRenewal: three real control-plane nodes (real etcd and
// kube-apiserver) that the controller cannot reach: the bed's bastion, in
// its own network namespace with one interface towards the controller and
// one on the hosts' network, is the only way in, so 6443, 2379 and 2380 are
// closed to the controller. With nothing but ~/.ssh/config's ProxyJump:
//   - kplay check sees the certificates expiring in 48h (exit 3);
//   - the shipped renew.yaml exits 0 with every host changed, nothing rolled
//     back and every check made (the served certificates and the fetched
//     credential through SSH);
//   - one TCP connection and one authentication to the bastion per run;
//   - afterwards, read on the hosts themselves: every port serves the
//     renewed certificate on disk, every etcd member is healthy, and real
//     kubectl lists namespaces with the fetched ~/.kube/config.
func TestE2EBastionRenewal(t *testing.T) {
	kubectl := kubectlBin(t)
	b := testbed.Require(t, testbed.Options{Hosts: 3, Real: true, CertValidity: 48 * time.Hour, KubeletPeriod: e2ePeriod, Bastion: true})
	home := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(home, ".ssh"), 0o700))
	cfg, err := os.ReadFile(b.SSHConfigPath)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(home, ".ssh", "config"), cfg, 0o600))
	// The hosts by address, and nothing else: user, key, known_hosts and
	// the way in all come from ~/.ssh/config.
	var inv strings.Builder
	inv.WriteString("hosts:\n")
	for _, h := range b.Hosts {
		fmt.Fprintf(&inv, "  %s: {address: %s}\n", h.Name, h.Address)
	}
	inv.WriteString("groups:\n  control_plane: [cp1, cp2, cp3]\n")
	invPath := writeFile(t, "inventory.yaml", inv.String())
	env := []string{"HOME=" + home, "SSH_AUTH_SOCK="}

	conns, auths := sshdLines(t, b.Bastion, "Connection from"), sshdLines(t, b.Bastion, "Accepted publickey")
	perRun := func(what string) {
		t.Helper()
		c, a := sshdLines(t, b.Bastion, "Connection from")-conns, sshdLines(t, b.Bastion, "Accepted publickey")-auths
		if c != 1 || a != 1 {
			t.Errorf("%s: %d TCP connections and %d authentications to the bastion, want 1 and 1", what, c, a)
		}
		conns, auths = conns+c, auths+a
	}

	if r := run(t, env, "check", "-i", invPath, "--within", "30d"); r.code != 3 || strings.Count(r.stdout, "apiserver ") < 3 {
		t.Fatalf("check through the bastion: exit %d, want 3 listing every host's apiserver certificate", r.code)
	}
	perRun("kplay check")

	r := run(t, env, "run", "../playbooks/renew.yaml", "-i", invPath, "--output", "json")
	if r.code != 0 {
		t.Fatalf("renew.yaml through the bastion: exit %d", r.code)
	}
	perRun("kplay run renew.yaml")
	if strings.Contains(r.stdout, "not checked") {
		t.Error("a check was not made through the bastion: the report says \"not checked\"")
	}
	// The checks the controller could not make directly, made through SSH.
	for _, h := range b.Hosts {
		for _, port := range []int{testbed.APIServerPort, testbed.EtcdClientPort, testbed.EtcdPeerPort} {
			if want := fmt.Sprintf("%s:%d serves ", h.Address, port); !strings.Contains(r.stdout, want) {
				t.Errorf("the report lacks %q: the served certificate was not checked", want)
			}
		}
	}
	if !strings.Contains(r.stdout, "accepted: GET https://") {
		t.Error("the report does not say the fetched credential was accepted by the apiserver")
	}
	rep := decodeReport(t, r.stdout)
	if n := rep.Totals["rolled_back"]; n != 0 {
		t.Errorf("%d rolled back", n)
	}
	for _, h := range rep.Hosts {
		if h.Status != "changed" {
			t.Errorf("%s: status %q, want changed", h.Name, h.Status)
		}
	}
	for _, h := range b.Hosts {
		for name, c := range pkiCerts(t, h) {
			if left := time.Until(c.NotAfter); left < 360*24*time.Hour {
				t.Errorf("%s %s: valid for %v after renewal, want ≥ 360 days", h.Name, name, left.Round(time.Hour))
			}
		}
		checkRunningOnDisk(t, h, false)
	}
	checkServedOnHosts(t, b)
	checkEtcdHealthOnHosts(t, b)
	kubectlOnHost(t, b, kubectl, filepath.Join(home, ".kube", "config"))
}

// checkServedOnHosts reads, from cp1 (the controller cannot reach them),
// what every host serves on 6443, 2379 and 2380, and compares it with the
// certificate on that host's disk.
func checkServedOnHosts(t *testing.T, b *testbed.Bed) {
	t.Helper()
	from := b.Hosts[0]
	for _, h := range b.Hosts {
		for port, cert := range map[int]string{
			testbed.APIServerPort:  "apiserver.crt",
			testbed.EtcdClientPort: "etcd/server.crt",
			testbed.EtcdPeerPort:   "etcd/peer.crt",
		} {
			served := servedFrom(t, from, h.Address, port)
			disk := readCert(t, h.Path("/etc/kubernetes/pki/"+cert))
			if fingerprint(served) != fingerprint(disk) {
				t.Errorf("%s:%d serves a certificate (not after %s) that is not %s on disk (not after %s)", h.Name, port,
					served.NotAfter.UTC().Format(time.RFC3339), cert, disk.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
}

// servedFrom returns the certificate served on addr:port, read with openssl
// s_client on host from.
func servedFrom(t *testing.T, from *testbed.Host, addr string, port int) *x509.Certificate {
	t.Helper()
	out, err := from.Exec(t.Context(), "sh", "-c",
		fmt.Sprintf("echo | timeout 10 openssl s_client -connect %s:%d 2>/dev/null | openssl x509", addr, port))
	if err != nil {
		t.Fatalf("%s: certificate on %s:%d: %v", from.Name, addr, port, err)
	}
	c, err := parseCertPEM(out)
	if err != nil {
		t.Fatalf("%s: certificate on %s:%d: %v", from.Name, addr, port, err)
	}
	return c
}

// checkEtcdHealthOnHosts asks every host's etcd member for /health on the
// host, with its healthcheck-client certificate.
func checkEtcdHealthOnHosts(t *testing.T, b *testbed.Bed) {
	t.Helper()
	const pki = "/etc/kubernetes/pki/etcd/"
	for _, h := range b.Hosts {
		out, err := h.Exec(t.Context(), "curl", "-sS", "--max-time", "10", "--cacert", pki+"ca.crt",
			"--cert", pki+"healthcheck-client.crt", "--key", pki+"healthcheck-client.key",
			fmt.Sprintf("https://127.0.0.1:%d/health", testbed.EtcdClientPort))
		if err != nil || !strings.Contains(string(out), `"health":"true"`) {
			t.Errorf("%s: etcd /health = %s, %v", h.Name, out, err)
		}
	}
}

// kubectlOnHost runs the real kubectl on each host with the kubeconfig kplay
// fetched to the controller, copied in (0600): it must list kube-system.
func kubectlOnHost(t *testing.T, b *testbed.Bed, kubectl, kubeconfig string) {
	t.Helper()
	fi, err := os.Stat(kubeconfig)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fetched %s: %v (mode %v)", kubeconfig, err, fi)
	}
	kc, err := os.ReadFile(kubeconfig)
	must(t, err)
	// The bed's bin directory is every host's /usr/local/bin.
	copyFile(t, kubectl, filepath.Join(b.Dir, "bin", "kubectl"), 0o755)
	for _, h := range b.Hosts {
		must(t, os.WriteFile(h.Path("/root/kubeconfig"), kc, 0o600))
		out, err := h.Exec(t.Context(), "/usr/local/bin/kubectl", "--kubeconfig", "/root/kubeconfig", "--request-timeout=10s",
			"get", "namespaces", "-o", "name")
		if err != nil || !strings.Contains(string(out), "namespace/kube-system") {
			t.Errorf("%s: kubectl get namespaces with the fetched kubeconfig: %v\n%s", h.Name, err, out)
			continue
		}
		t.Logf("%s: kubectl %s get namespaces (fetched ~/.kube/config): %s", h.Name, testbed.KubernetesVersion,
			strings.Join(strings.Fields(string(out)), " "))
	}
}

// copyFile copies src to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	must(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	must(t, err)
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	must(t, out.Close())
}
