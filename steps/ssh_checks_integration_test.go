package steps_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/steps"
	"github.com/kplay/kplay/testbed"
)

// closePortToController makes the host drop its answers from port to the
// controller (a policy rule in the host's own network namespace), so that
// the controller cannot reach the port while SSH still works. The host
// itself, dialling its own address, still reaches it.
func closePortToController(t *testing.T, h *testbed.Host, port int) {
	t.Helper()
	ctx := t.Context()
	gw, err := h.Exec(ctx, "sh", "-c", "ip -4 -o addr show dev eth0 | awk '{print $4}'")
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, err := net.ParseCIDR(strings.TrimSpace(string(gw)))
	if err != nil {
		t.Fatalf("host address %q: %v", gw, err)
	}
	ctrl := subnet.IP.To4()
	ctrl[3] = 1 // the bridge's address on the controller
	rule := []string{"ip", "rule", "add", "to", ctrl.String(), "ipproto", "tcp", "sport", fmt.Sprint(port), "prohibit"}
	if _, err := h.Exec(ctx, rule...); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(h.Address, fmt.Sprint(port))
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still reachable from the controller", addr)
	}
}

// TestIntegrationChecksThroughSSH: a host whose API port is closed to the
// controller still passes the renewal's checks (the served certificate,
// admin.conf's credential), first through the host's SSH connection, then,
// with the host's sshd set to AllowTcpForwarding no, on the host. Nothing
// fails, so nothing would be rolled back.
func TestIntegrationChecksThroughSSH(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true, CertValidity: 48 * time.Hour, KeyAlgorithm: "ECDSA-P256"})
	h := b.Hosts[0]
	closePortToController(t, h, 6443)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dest := filepath.Join(t.TempDir(), "kube", "config")
	served := func() string {
		want, _ := onDisk(t, h.Path("/etc/kubernetes/pki/apiserver.crt"))
		return "serves /etc/kubernetes/pki/apiserver.crt (sha256 " + want[:16]
	}
	for _, tc := range []struct {
		name, sshd, params, via string
		served                  func() string // what the served check must say
	}{
		{name: "direct-tcpip", via: "GET https://" + h.Address + ":6443/api → 200", served: served},
		// Asked to check from the controller, which cannot: not made, not failed.
		{name: "from the controller", params: "\nserve_check: controller", via: "GET https://" + h.Address + ":6443/api → 200",
			served: func() string { return "not checked: the controller cannot reach it" }},
		{name: "forwarding forbidden", sshd: "AllowTcpForwarding no\n", via: "/api from " + h.Name + " → 200", served: served},
	} {
		if tc.sshd != "" {
			reconfigureSSHD(t, h, tc.sshd)
		}
		tg := steps.NewTarget(dial(t, b, h), fmt.Sprintf("it-%d", time.Now().UnixNano()))
		if _, err := itStep(t, "renew_certs", "").Apply(ctx, tg); err != nil {
			t.Fatalf("%s: renew: %v", tc.name, err)
		}
		r, err := itStep(t, "restart_apiserver", "poll_interval: 250ms"+tc.params).Apply(ctx, tg)
		if err != nil {
			t.Fatalf("%s: restart_apiserver with 6443 closed to the controller: %v", tc.name, err)
		}
		if d, want := strings.Join(r.Details, "\n"), tc.served(); !strings.Contains(d, want) {
			t.Errorf("%s: served check says %s, want %q", tc.name, d, want)
		}
		f, err := itStep(t, "fetch_admin_conf", "dest: "+dest).Apply(ctx, tg)
		if err != nil || !strings.Contains(f.Message, tc.via) {
			t.Errorf("%s: fetch_admin_conf: %q %v, want %q", tc.name, f.Message, err, tc.via)
		}
	}
	if _, err := os.Stat(dest); err != nil {
		t.Error(err)
	}
}

// reconfigureSSHD adds lines to the host's sshd_config and restarts its sshd.
func reconfigureSSHD(t *testing.T, h *testbed.Host, lines string) {
	t.Helper()
	p := h.Path("/etc/ssh/sshd_config")
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// sshd takes the first value it reads: put the lines first.
	if err := os.WriteFile(p, append([]byte(lines), old...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.KillSSHD(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.StartSSHD(t.Context()); err != nil {
		t.Fatal(err)
	}
}
