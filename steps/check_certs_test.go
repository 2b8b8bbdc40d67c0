package steps

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCheckCertsRealPKI(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	tg := h.target()
	before := snapshot(t, h)
	r, err := newStep(t, "check_certs", "").Apply(testCtx(t), tg)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.runs()) != 1 {
		t.Errorf("check_certs ran %d remote commands, want 1", len(h.runs()))
	}
	l, ok := r.Data.(CertList)
	if !ok {
		t.Fatalf("Data is %T, want CertList", r.Data)
	}
	want := map[string]CertKind{
		"apiserver": KindPKI, "apiserver-etcd-client": KindPKI, "apiserver-kubelet-client": KindPKI,
		"front-proxy-client": KindPKI, "etcd-server": KindPKI, "etcd-peer": KindPKI, "etcd-healthcheck-client": KindPKI,
		"admin.conf": KindKubeconfig, "super-admin.conf": KindKubeconfig, "controller-manager.conf": KindKubeconfig,
		"scheduler.conf": KindKubeconfig, "ca": KindCA, "etcd-ca": KindCA, "front-proxy-ca": KindCA,
		"kubelet-client": KindKubelet,
	}
	if len(l) != len(want) {
		t.Errorf("got %d certificates, want %d: %+v", len(l), len(want), l)
	}
	now := tg.Now()
	for _, c := range l {
		k, ok := want[c.Name]
		if !ok {
			t.Errorf("unexpected certificate %q", c.Name)
			continue
		}
		if c.Kind != k || c.Missing || c.Host != "cp1" {
			t.Errorf("%s: kind %s missing %v host %q", c.Name, c.Kind, c.Missing, c.Host)
		}
		switch c.Kind {
		case KindPKI, KindKubeconfig:
			if !c.Renewable || c.DaysLeft != 1 || c.NotAfter.Sub(now) > 49*time.Hour || c.CA == "" {
				t.Errorf("%s: renewable %v days %d not_after %s ca %q", c.Name, c.Renewable, c.DaysLeft, c.NotAfter, c.CA)
			}
		case KindCA:
			if c.Renewable || !c.IsCA || c.DaysLeft < 3000 {
				t.Errorf("%s: CA renewable %v is_ca %v days %d", c.Name, c.Renewable, c.IsCA, c.DaysLeft)
			}
		case KindKubelet:
			if c.Renewable || c.CA != "ca" || c.DaysLeft != 0 {
				t.Errorf("kubelet: renewable %v ca %q days %d", c.Renewable, c.CA, c.DaysLeft)
			}
		}
	}
	if c, _ := l.Find("etcd-server"); c.CA != "etcd-ca" {
		t.Errorf("etcd-server CA = %q", c.CA)
	}
	if !l.ExpiresWithin(now, 30*24*time.Hour) || l.ExpiresWithin(now, time.Hour) {
		t.Error("ExpiresWithin: want true for 30d and false for 1h")
	}
	warn := strings.Join(r.Details, "\n")
	if !regexp.MustCompile(`WARNING: \d+ expire within 30d \(soonest [^)]+\): .*\bapiserver\b`).MatchString(warn) || !strings.Contains(warn, "kubelet rotates this one") {
		t.Errorf("details lack warnings:\n%s", warn)
	}
	// JSON: not_after in RFC 3339.
	b, _ := json.Marshal(l[0])
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if _, err := time.Parse(time.RFC3339, m["not_after"].(string)); err != nil {
		t.Errorf("not_after %v: %v", m["not_after"], err)
	}
	h.assertNoSecrets(t, nil)
	if d := diffSnapshots(before, snapshot(t, h)); len(d) > 0 {
		t.Errorf("check_certs changed the host: %v", d)
	}

	// fail_within fails and names the certificates; a short window passes.
	_, err = newStep(t, "check_certs", "fail_within: 3d").Apply(testCtx(t), tg)
	if err == nil || !strings.Contains(err.Error(), "apiserver (") || !strings.Contains(err.Error(), "within 3d") {
		t.Errorf("fail_within 3d: %v", err)
	}
	if _, err := newStep(t, "check_certs", "fail_within: 1h\nwarn_within: 1h").Apply(testCtx(t), tg); err != nil {
		t.Errorf("fail_within 1h: %v", err)
	}
	// Plan is the same read-only check.
	p, err := newStep(t, "check_certs", "").Plan(testCtx(t), tg)
	if err != nil || p.WouldChange || p.Data == nil {
		t.Errorf("plan: %+v %v", p, err)
	}
}

func TestCheckCertsMissingKubeletAndNoPKI(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{noKubelet: true})
	r, err := newStep(t, "check_certs", "").Apply(testCtx(t), h.target())
	if err != nil {
		t.Fatal(err)
	}
	c, ok := r.Data.(CertList).Find("kubelet-client")
	if !ok || !c.Missing || c.Kind != KindKubelet {
		t.Errorf("kubelet-client: %+v", c)
	}
	if !strings.Contains(strings.Join(r.Details, "\n"), "kubelet client certificate /var/lib/kubelet/pki/kubelet-client-current.pem not found") {
		t.Errorf("details: %v", r.Details)
	}

	empty := newFakeHost(t)
	if _, err := newStep(t, "check_certs", "").Apply(testCtx(t), empty.target()); err == nil || !strings.Contains(err.Error(), "no kubeadm certificates under /etc/kubernetes") {
		t.Errorf("empty host: %v", err)
	}
}
