package integration

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/testbed"
)

// pkiCerts returns every leaf certificate kubeadm manages on h, read from
// the controller side: pki/*.crt, pki/etcd/*.crt (CAs excluded) and the
// client certificates embedded in the kubeconfigs.
func pkiCerts(t *testing.T, h *testbed.Host) map[string]*x509.Certificate {
	t.Helper()
	out := map[string]*x509.Certificate{}
	for _, glob := range []string{"/etc/kubernetes/pki/*.crt", "/etc/kubernetes/pki/etcd/*.crt"} {
		files, _ := filepath.Glob(h.Path(glob))
		for _, f := range files {
			c := readCert(t, f)
			if !c.IsCA {
				out[strings.TrimPrefix(f, h.Path("/etc/kubernetes/pki")+"/")] = c
			}
		}
	}
	for _, conf := range []string{"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"} {
		p := h.Path("/etc/kubernetes/" + conf)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		_, certPEM, _ := kubeconfigCreds(t, p)
		out[conf], _ = parseCertPEM(certPEM)
	}
	if len(out) < 10 {
		t.Fatalf("%s: only %d certificates found", h.Name, len(out))
	}
	return out
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("no PEM")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// kubeconfigCreds returns the server, client certificate PEM and key PEM of
// a kubeconfig's first user.
func kubeconfigCreds(t *testing.T, path string) (server string, cert, key []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
				Key  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil || len(kc.Users) == 0 || len(kc.Clusters) == 0 {
		t.Fatalf("%s: bad kubeconfig: %v", path, err)
	}
	cert, _ = base64.StdEncoding.DecodeString(kc.Users[0].User.Cert)
	key, _ = base64.StdEncoding.DecodeString(kc.Users[0].User.Key)
	return kc.Clusters[0].Cluster.Server, cert, key
}

// servedFingerprint returns the SHA-256 of the certificate served on addr.
func servedFingerprint(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) // only to read the served certificate
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// only returns the entries of a snapshot under prefix.
func only(s map[string]string, prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range s {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// TestRenewEndToEnd drives the shipped renew.yaml and kplay check on three
// kubeadm control-plane test hosts whose certificates expire in 48h.
func TestRenewEndToEnd(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 3, Kube: true, CertValidity: 48 * time.Hour})
	home := t.TempDir() // fetch_admin_conf writes ~/.kube/config here, not in the real home
	env := []string{"HOME=" + home}
	inv := b.InventoryPath
	shipped, err := os.ReadFile("../playbooks/renew.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cp1, cp2 := b.Hosts[0], b.Hosts[1]
	orig := map[string]map[string]*x509.Certificate{}
	for _, h := range b.Hosts {
		orig[h.Name] = pkiCerts(t, h)
		for name, c := range orig[h.Name] {
			if left := time.Until(c.NotAfter); left > 49*time.Hour || left < 40*time.Hour {
				t.Fatalf("%s %s: testbed certificate valid for %s, want about 48h", h.Name, name, left)
			}
		}
	}

	t.Run("check before", func(t *testing.T) {
		if r := run(t, env, "check", "-i", inv, "--within", "30d"); r.code != 3 {
			t.Errorf("check --within 30d on 48h certificates: exit %d, want 3", r.code)
		}
		r := run(t, env, "check", "-i", inv, "--within", "1d", "--output", "json")
		if r.code != 0 {
			t.Errorf("check --within 1d on 48h certificates: exit %d, want 0", r.code)
		}
		var doc struct {
			Hosts []struct {
				Name         string `json:"name"`
				Certificates []struct {
					Name     string `json:"name"`
					NotAfter string `json:"not_after"`
				} `json:"certificates"`
			} `json:"hosts"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Hosts) != 3 {
			t.Fatalf("check JSON: %v", err)
		}
		for _, h := range doc.Hosts {
			found := false
			for _, c := range h.Certificates {
				if _, err := time.Parse(time.RFC3339, c.NotAfter); err != nil {
					t.Errorf("%s %s: not_after %q is not RFC 3339", h.Name, c.Name, c.NotAfter)
				}
				if c.Name == "apiserver" {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no apiserver certificate in check output", h.Name)
			}
		}
	})

	t.Run("dry run", func(t *testing.T) {
		before := map[string]map[string]string{}
		for _, h := range b.Hosts {
			before[h.Name] = snapshot(t, h)
		}
		r := run(t, env, "run", "../playbooks/renew.yaml", "-i", inv, "--dry-run")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		for _, h := range b.Hosts {
			if d := diffSnapshots(before[h.Name], snapshot(t, h)); len(d) > 0 {
				t.Errorf("%s changed by a dry run: %v", h.Name, d)
			}
			exp := orig[h.Name]["apiserver.crt"].NotAfter.UTC().Format("2006-01-02")
			var hostLines []string
			for _, l := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(l, h.Name+" ") && strings.Contains(l, "renew") {
					hostLines = append(hostLines, l)
				}
			}
			if !strings.Contains(r.stdout, exp) || len(hostLines) == 0 {
				t.Errorf("dry run does not show %s's renewal plan with the current expiry %s", h.Name, exp)
			}
		}
		if _, err := os.Stat(filepath.Join(home, ".kube")); err == nil {
			t.Error("dry run wrote ~/.kube")
		}
	})

	t.Run("kubeadm fails on cp2", func(t *testing.T) {
		bad := "#!/bin/sh\nkubeadm certs renew apiserver >&2 && kubeadm certs renew admin.conf >&2\n" +
			"echo 'simulated failure: renewing etcd-server: disk on fire' >&2\nexit 1\n"
		if err := os.WriteFile(cp2.Path("/root/bad-kubeadm"), []byte(bad), 0o755); err != nil {
			t.Fatal(err)
		}
		pb := writeFile(t, "renew.yaml", strings.Replace(string(shipped), "renew_certs: {}", `renew_certs: {kubeadm: "{{ kubeadm_bin }}"}`, 1))
		invSrc, _ := os.ReadFile(inv)
		invSrc = append(invSrc, []byte("group_vars:\n  control_plane: {kubeadm_bin: kubeadm}\n")...)
		invSrc = bytes.Replace(invSrc, []byte("cp2: {address: "+cp2.Address+"}"), []byte("cp2: {address: "+cp2.Address+", vars: {kubeadm_bin: /root/bad-kubeadm}}"), 1)
		badInv := writeFile(t, "inventory.yaml", string(invSrc))
		if !bytes.Contains(invSrc, []byte("/root/bad-kubeadm")) {
			t.Fatalf("could not inject the failing kubeadm into %s", invSrc)
		}
		// The renewal play runs on every host at once with rollback: all:
		// cp2's failure undoes cp1's and cp3's renewals too, and no host
		// restarts anything.
		before := map[string]map[string]string{}
		for _, h := range b.Hosts {
			before[h.Name] = only(snapshot(t, h), "etc/kubernetes")
		}
		r := run(t, env, "run", pb, "-i", badInv, "--output", "json")
		if r.code != 1 {
			t.Fatalf("exit %d, want 1", r.code)
		}
		for _, h := range b.Hosts {
			if d := diffSnapshots(before[h.Name], only(snapshot(t, h), "etc/kubernetes")); len(d) > 0 {
				t.Errorf("%s's /etc/kubernetes is not byte-identical after the rollback: %v", h.Name, d)
			}
		}
		if got, want := servedFingerprint(t, cp2.Address+":6443"), fingerprint(orig["cp2"]["apiserver.crt"]); got != want {
			t.Errorf("cp2's apiserver serves %s, want the original certificate %s", got, want)
		}
		rep := decodeReport(t, r.stdout)
		h := rep.host(t, "cp2")
		if h.Status != "failed" || !strings.Contains(h.Error, "disk on fire") {
			t.Errorf("cp2 report: status %q error %q; want kubeadm's error", h.Status, h.Error)
		}
		if !strings.Contains(h.State, "rolled back") {
			t.Errorf("cp2 state %q does not say it was rolled back", h.State)
		}
		for _, name := range []string{"cp1", "cp3"} {
			hr := rep.host(t, name)
			if hr.Status != "rolled back" || !strings.Contains(hr.State, "rolled back") {
				t.Errorf("%s: status %q state %q, want rolled back (renewed, then undone when cp2 failed)", name, hr.Status, hr.State)
			}
			for _, st := range hr.Steps {
				if st.Type == "restart_apiserver" && st.Status != "not run" {
					t.Errorf("%s: restart step %s after a failed renewal play", name, st.Status)
				}
			}
		}
		if !strings.Contains(rep.Stopped, "Restart the control plane") {
			t.Errorf("stopped = %q, want it to name the restart play as not started", rep.Stopped)
		}
	})

	t.Run("renew", func(t *testing.T) {
		r := run(t, env, "run", "../playbooks/renew.yaml", "-i", inv)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		for _, h := range b.Hosts {
			for name, c := range pkiCerts(t, h) {
				if left := time.Until(c.NotAfter); left < 360*24*time.Hour {
					t.Errorf("%s %s: valid for %s after renewal, want ≥ 360 days", h.Name, name, left.Round(time.Hour))
				}
			}
			onDisk := readCert(t, h.Path("/etc/kubernetes/pki/apiserver.crt"))
			if got := servedFingerprint(t, h.Address+":6443"); got != fingerprint(onDisk) {
				t.Errorf("%s's apiserver does not serve the renewed certificate", h.Name)
			}
		}
		cfg := filepath.Join(home, ".kube", "config")
		st, err := os.Stat(cfg)
		if err != nil {
			t.Fatalf("~/.kube/config: %v", err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("~/.kube/config mode %v, want 0600", st.Mode().Perm())
		}
		if dst, _ := os.Stat(filepath.Dir(cfg)); dst.Mode().Perm() != 0o700 {
			t.Errorf("~/.kube mode %v, want 0700", dst.Mode().Perm())
		}
		// The fetched credential is accepted by the API.
		server, certPEM, keyPEM := kubeconfigCreds(t, cfg)
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(readCert(t, cp1.Path("/etc/kubernetes/pki/ca.crt")))
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
		resp, err := cl.Get(server + "/api")
		if err != nil {
			t.Fatalf("GET %s/api: %v", server, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET /api with the fetched credential: %s", resp.Status)
		}
		if leaf, _ := parseCertPEM(certPEM); time.Until(leaf.NotAfter) < 360*24*time.Hour {
			t.Error("the fetched admin credential is not the renewed one")
		}
	})

	t.Run("check after", func(t *testing.T) {
		if r := run(t, env, "check", "-i", inv, "--within", "30d"); r.code != 0 {
			t.Errorf("check after renewal: exit %d, want 0", r.code)
		}
	})
}
