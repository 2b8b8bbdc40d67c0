package testbed

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestAddKubeLite: every host gets kubeadm on PATH and the same PKI, made
// by kubeadm on the first host; no apiserver runs.
func TestAddKubeLite(t *testing.T) {
	b := Require(t, Options{Hosts: 2})
	if err := b.AddKubeLite(t.Context(), KubeLiteOptions{KeyAlgorithm: "ECDSA-P256"}); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(b.Hosts[0].Path("/etc/kubernetes/pki/apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range b.Hosts {
		for _, f := range []string{"apiserver.crt", "ca.crt", "etcd/ca.crt", "front-proxy-ca.crt", "sa.pub"} {
			if _, err := os.Stat(h.Path("/etc/kubernetes/pki/" + f)); err != nil {
				t.Errorf("%s: %v", h.Name, err)
			}
		}
		got, err := os.ReadFile(h.Path("/etc/kubernetes/pki/apiserver.crt"))
		if err != nil || !bytes.Equal(got, first) {
			t.Errorf("%s: apiserver.crt differs from %s's (%v)", h.Name, b.Hosts[0].Name, err)
		}
		fi, err := os.Stat(h.Path("/etc/kubernetes/pki/ca.key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: ca.key mode %v (%v), want 0600", h.Name, fi.Mode(), err)
		}
		out, err := h.Exec(t.Context(), "sh", "-c", "kubeadm version -o short && openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -enddate")
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if !strings.HasPrefix(string(out), KubernetesVersion+"\nnotAfter=") {
			t.Errorf("%s: %q", h.Name, out)
		}
		if ps, err := h.Exec(t.Context(), "ps", "-eo", "comm"); err != nil || strings.Contains(string(ps), "kube-apiserver") {
			t.Errorf("%s: an apiserver runs on a lite host (%v):\n%s", h.Name, err, ps)
		}
	}
}
