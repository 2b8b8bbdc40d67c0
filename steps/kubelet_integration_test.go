package steps_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/steps"
	"github.com/kplay/kplay/testbed"
)

// kubeletTree describes every entry under a host's /etc/kubernetes and
// /var/lib/kubelet: mode, and content hash or symlink target.
func kubeletTree(t *testing.T, h *testbed.Host) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, d := range []string{"/etc/kubernetes", "/var/lib/kubelet"} {
		base := h.Path(d)
		err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			desc := info.Mode().String()
			switch {
			case info.Mode()&fs.ModeSymlink != 0:
				l, _ := os.Readlink(p)
				desc += " -> " + l
			case info.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				s := sha256.Sum256(b)
				desc += " " + hex.EncodeToString(s[:])
			}
			rel, _ := filepath.Rel(h.Root, p)
			m[rel] = desc
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// lines counts the lines of a file (0 if it does not exist).
func lines(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestIntegrationRenewKubeletClientOverSSH: a kube host (real sshd, real
// kubeadm PKI and kubelet.conf) whose kubelet client certificate has
// expired gets a new one from renew_kubelet_client over SSH; the undo puts
// everything back byte for byte. An external CA (no ca.key) is refused
// with nothing changed.
func TestIntegrationRenewKubeletClientOverSSH(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true, KeyAlgorithm: "ECDSA-P256"})
	h := b.Hosts[0]
	ca, _, err := h.ClusterCA()
	if err != nil {
		t.Fatal(err)
	}
	_, old, err := h.ExpireKubeletClient()
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, b, h)
	tg := steps.NewTarget(c, fmt.Sprintf("it-%d", time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	const restarts = "/root/kubelet-restarts"
	cur := h.Path(testbed.KubeletClientCertPath)
	oldLink, err := os.Readlink(cur)
	if err != nil {
		t.Fatal(err)
	}
	s := itStep(t, "renew_kubelet_client", "restart: echo restarted >> "+restarts)
	orig := kubeletTree(t, h)

	// The plan reads only, and says what it would do.
	p, err := s.Plan(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plan: %s\n%s", p.Summary, strings.Join(p.Details, "\n"))
	if !p.WouldChange || !strings.Contains(p.Summary, "system:node:"+h.Name) || !strings.Contains(strings.Join(p.Details, "\n"), "EXPIRED") {
		t.Errorf("plan: %+v", p)
	}
	if d := treeDiff(orig, kubeletTree(t, h)); len(d) > 0 || lines(t, h.Path(restarts)) != 0 {
		t.Fatalf("the plan changed the host: %v", d)
	}

	r, err := s.Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("apply: %s\n%s", r.Message, strings.Join(r.Details, "\n"))
	if !r.Changed || r.Undo == nil {
		t.Fatalf("result: %+v", r)
	}

	// The new credential, read on the controller as the kubelet reads it.
	link, err := os.Readlink(cur)
	if err != nil {
		t.Fatal(err)
	}
	if link == oldLink || filepath.IsAbs(link) {
		t.Errorf("kubelet-client-current.pem -> %q: not re-pointed, or not relative like the original", link)
	}
	file := filepath.Join(filepath.Dir(cur), link)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", link, fi.Mode().Perm())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(data, data); err != nil {
		t.Errorf("the new certificate and key do not match: %v", err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s does not start with a certificate", link)
	}
	nc, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := nc.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the new certificate does not chain to the bed's CA: %v", err)
	}
	if nc.Subject.CommonName != "system:node:"+h.Name || !reflect.DeepEqual(nc.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject %s", nc.Subject)
	}
	if left := time.Until(nc.NotAfter); left < 364*24*time.Hour || left > 366*24*time.Hour || nc.NotBefore.After(time.Now().Add(time.Minute)) {
		t.Errorf("valid from %s to %s, want now to a year from now", nc.NotBefore, nc.NotAfter)
	}
	if nc.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v, want ECDSA", nc.PublicKeyAlgorithm)
	}
	info, ok := r.Data.(steps.KubeletClientRenewal)
	if !ok || info.OldNotAfter == nil || !info.OldNotAfter.Equal(old.NotAfter) || info.NewNotAfter == nil || !info.NewNotAfter.Equal(nc.NotAfter) ||
		info.Subject != nc.Subject.String() || info.Node != h.Name {
		t.Errorf("data: %#v", r.Data)
	}
	// kubelet.conf: its user uses the file, and embeds nothing any more.
	kc, err := os.ReadFile(h.Path("/etc/kubernetes/kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Users []struct {
			Name string         `yaml:"name"`
			User map[string]any `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(kc, &conf); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"client-certificate": testbed.KubeletClientCertPath, "client-key": testbed.KubeletClientCertPath}
	if len(conf.Users) != 1 || !reflect.DeepEqual(conf.Users[0].User, want) {
		t.Errorf("kubelet.conf users: %+v", conf.Users)
	}
	if n := lines(t, h.Path(restarts)); n != 1 {
		t.Errorf("the restart command ran %d times, want 1", n)
	}

	// Undo: byte for byte, and the kubelet restarted again.
	uctx, ucancel := context.WithTimeout(context.Background(), time.Minute)
	defer ucancel()
	if err := r.Undo.Fn(uctx, tg); err != nil {
		t.Fatalf("undo %q: %v", r.Undo.Desc, err)
	}
	if d := treeDiff(orig, kubeletTree(t, h)); len(d) > 0 {
		t.Errorf("after the undo: %v", d)
	}
	if n := lines(t, h.Path(restarts)); n != 2 {
		t.Errorf("the restart command ran %d times, want 2 (apply and undo)", n)
	}

	// An external CA: refused before anything changes.
	key := h.Path("/etc/kubernetes/pki/ca.key")
	if err := os.Rename(key, key+".away"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Rename(key+".away", key); err != nil {
			t.Error(err)
		}
	})
	orig = kubeletTree(t, h)
	_, err = s.Apply(ctx, tg)
	if err == nil || !strings.Contains(err.Error(), "external CA") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("external CA: err = %v", err)
	}
	if d := treeDiff(orig, kubeletTree(t, h)); len(d) > 0 || lines(t, h.Path(restarts)) != 2 {
		t.Errorf("with an external CA the host changed: %v", d)
	}
}
