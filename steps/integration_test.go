package steps_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/remote"
	"github.com/kplay/kplay/steps"
	"github.com/kplay/kplay/testbed"
)

// itExpander expands nothing: the integration steps use literal parameters.
type itExpander struct{}

// Text returns s.
func (itExpander) Text(s string) (string, error) { return s, nil }

// Shell returns s.
func (itExpander) Shell(s string) (string, error) { return s, nil }

// Get finds no variable.
func (itExpander) Get(string) (string, bool) { return "", false }

// itStep builds a step from YAML parameters.
func itStep(t *testing.T, typ, params string) steps.Step {
	t.Helper()
	var n *yaml.Node
	if params != "" {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(params), &doc); err != nil {
			t.Fatal(err)
		}
		n = doc.Content[0]
	}
	s, err := steps.Builtin()[typ](n, itExpander{})
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return s
}

// dial opens an SSH connection to a bed host as root.
func dial(t *testing.T, b *testbed.Bed, h *testbed.Host) *remote.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := remote.Dial(ctx, remote.Config{Name: h.Name, Address: h.Address, KeyPath: b.KeyPath, KnownHosts: b.KnownHostsPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// hostTree hashes every file under a host's /etc/kubernetes (except kplay's park dir).
func hostTree(t *testing.T, h *testbed.Host) map[string]string {
	t.Helper()
	base := h.Path("/etc/kubernetes")
	m := map[string]string{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if rel == "kplay-parked" && d.IsDir() {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(s[:])
		}
		m[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func treeDiff(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "new "+k)
		}
	}
	sort.Strings(d)
	return d
}

// served returns the SHA-256 of the certificate served on addr.
func served(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) // test: compare fingerprints only
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	s := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(s[:])
}

// onDisk returns the SHA-256 of a PEM certificate file on the controller.
func onDisk(t *testing.T, p string) (string, *x509.Certificate) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(blk.Bytes)
	return hex.EncodeToString(s[:]), c
}

// TestIntegrationRenewOverSSH runs the kubeadm steps in renew.yaml's order
// on a real sshd host with a real kubeadm PKI (48h certificates, ECDSA keys)
// and an apiserver stand-in, then rolls everything back.
func TestIntegrationRenewOverSSH(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true, CertValidity: 48 * time.Hour, KeyAlgorithm: "ECDSA-P256"})
	h := b.Hosts[0]
	c := dial(t, b, h)
	tg := steps.NewTarget(c, fmt.Sprintf("it-%d", time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	orig := hostTree(t, h)
	apiAddr := net.JoinHostPort(h.Address, "6443")
	origServed := served(t, apiAddr)
	dest := filepath.Join(t.TempDir(), "kube", "config")

	plan := []struct{ typ, params string }{
		{"check_time", ""},
		{"check_certs", ""},
		{"backup", ""},
		{"renew_certs", "only_within: 30d"},
		{"verify_enddate", ""},
		{"restart_apiserver", "poll_interval: 250ms"},
		{"fetch_admin_conf", "dest: " + dest},
	}
	// Dry run: every plan reads only.
	for _, s := range plan {
		p, err := itStep(t, s.typ, s.params).Plan(ctx, tg)
		if err != nil {
			t.Fatalf("plan %s: %v", s.typ, err)
		}
		t.Logf("plan %s: %s", s.typ, p.Summary)
	}
	if d := treeDiff(orig, hostTree(t, h)); len(d) > 0 {
		t.Fatalf("plans changed /etc/kubernetes: %v", d)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("plan wrote the kubeconfig")
	}

	var undos []*steps.Undo
	for _, s := range plan {
		r, err := itStep(t, s.typ, s.params).Apply(ctx, tg)
		if err != nil {
			t.Fatalf("%s: %v", s.typ, err)
		}
		t.Logf("%s: %s", s.typ, r.Message)
		if r.Undo != nil {
			undos = append(undos, r.Undo)
		}
		if s.typ == "check_certs" {
			if l := r.Data.(steps.CertList); !l.ExpiresWithin(tg.Now(), 30*24*time.Hour) {
				t.Errorf("48h certificates do not expire within 30d: %v", l)
			}
		}
	}
	// Every renewed certificate ≥ 360 days, the apiserver serves the new one,
	// and the kubeconfig is 0600 and accepted (fetch_admin_conf verified it).
	after, err := itStep(t, "check_certs", "").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range after.Data.(steps.CertList).Renewable() {
		if ci.DaysLeft < 360 {
			t.Errorf("%s: %d days left after renewal", ci.Name, ci.DaysLeft)
		}
	}
	want, _ := onDisk(t, h.Path("/etc/kubernetes/pki/apiserver.crt"))
	if got := served(t, apiAddr); got != want || got == origServed {
		t.Errorf("apiserver serves %s, disk %s, before %s", got, want, origServed)
	}
	if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig: %v %v", st, err)
	}

	// Roll back in reverse order: /etc/kubernetes is byte-identical again.
	for i := len(undos) - 1; i >= 0; i-- {
		uctx, ucancel := context.WithTimeout(context.Background(), time.Minute)
		if err := undos[i].Fn(uctx, tg); err != nil {
			t.Errorf("undo %q: %v", undos[i].Desc, err)
		}
		ucancel()
	}
	if d := treeDiff(orig, hostTree(t, h)); len(d) > 0 {
		t.Errorf("after rollback /etc/kubernetes differs: %v", d)
	}
	if got := served(t, apiAddr); got != origServed {
		t.Errorf("after rollback the apiserver serves %s, want the original %s", got, origServed)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("rollback left %s: %v", dest, err)
	}
}

// TestIntegrationKubeadmFailsOverSSH: kubeadm renews part of the set and
// fails; renew_certs restores /etc/kubernetes before returning, and the
// apiserver still serves the original certificate.
func TestIntegrationKubeadmFailsOverSSH(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true, CertValidity: 48 * time.Hour, KeyAlgorithm: "ECDSA-P256"})
	h := b.Hosts[0]
	c := dial(t, b, h)
	tg := steps.NewTarget(c, fmt.Sprintf("it-%d", time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	wrapper := "#!/bin/sh\nkubeadm certs renew apiserver && kubeadm certs renew admin.conf\necho 'error: simulated kubeadm failure' >&2\nexit 1\n"
	if err := os.WriteFile(h.Path("/root/kubeadm-fails"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	orig := hostTree(t, h)
	apiAddr := net.JoinHostPort(h.Address, "6443")
	origServed := served(t, apiAddr)
	_, err := itStep(t, "renew_certs", "kubeadm: /root/kubeadm-fails").Apply(ctx, tg)
	if err == nil || !strings.Contains(err.Error(), "simulated kubeadm failure") || !strings.Contains(err.Error(), "was restored from backup") {
		t.Fatalf("err = %v", err)
	}
	if d := treeDiff(orig, hostTree(t, h)); len(d) > 0 {
		t.Errorf("/etc/kubernetes not restored: %v", d)
	}
	if got := served(t, apiAddr); got != origServed {
		t.Errorf("apiserver serves %s, want the original %s", got, origServed)
	}
}
