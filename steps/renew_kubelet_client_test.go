package steps

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/yamlx"
)

func TestRenewKubeletClientParams(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	defaults := func(mod func(*RenewKubeletClient)) *RenewKubeletClient {
		s := &RenewKubeletClient{Within: 7 * day, KubeDir: "/etc/kubernetes", KubeletPKI: "/var/lib/kubelet/pki",
			KubeletConf: "/etc/kubernetes/kubelet.conf", Restart: "systemctl restart kubelet", Validity: 365 * day}
		if mod != nil {
			mod(s)
		}
		return s
	}
	ok := []struct {
		params string
		want   *RenewKubeletClient
	}{
		{"", defaults(nil)},
		{"null", defaults(nil)},
		{"within: 30d\nvalidity: 90d", defaults(func(s *RenewKubeletClient) { s.Within, s.Validity = 30*day, 90*day })},
		{"within: 0s", defaults(func(s *RenewKubeletClient) { s.Within = 0 })},
		{"node_name: '{{ addr }}'", defaults(func(s *RenewKubeletClient) { s.NodeName = "10.0.0.9" })},
		{"node_name: worker-1.example.com", defaults(func(s *RenewKubeletClient) { s.NodeName = "worker-1.example.com" })},
		{"kubernetes_dir: /srv/k/", defaults(func(s *RenewKubeletClient) { s.KubeDir, s.KubeletConf = "/srv/k", "/srv/k/kubelet.conf" })},
		{"kubelet_pki: '{{ home }}/pki'\nkubelet_conf: /etc/k/kubelet.conf", defaults(func(s *RenewKubeletClient) {
			s.KubeletPKI, s.KubeletConf = "/home/x/pki", "/etc/k/kubelet.conf"
		})},
		{"restart: 'touch {{ home }}/restarted && true'", defaults(func(s *RenewKubeletClient) { s.Restart = "touch /home/x/restarted && true" })},
	}
	for _, c := range ok {
		t.Run("ok/"+c.params, func(t *testing.T) {
			got, err := buildStep("renew_kubelet_client", c.params)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
	bad := []struct {
		params   string
		line     int
		key, msg string
	}{
		{"within: 7d\nwithn: 1d", 2, "renew_kubelet_client.withn", "unknown key"},
		{"within: soon", 1, "renew_kubelet_client.within", "bad duration"},
		{"validity: 12h", 1, "renew_kubelet_client.validity", "whole number of days"},
		{"validity: 36h", 1, "renew_kubelet_client.validity", "whole number of days"},
		{"validity: [1d]", 1, "renew_kubelet_client.validity", "duration"},
		{"node_name: CP1", 1, "renew_kubelet_client.node_name", "not a node name"},
		{"node_name: a_b", 1, "renew_kubelet_client.node_name", "not a node name"},
		{"node_name: -a", 1, "renew_kubelet_client.node_name", "not a node name"},
		{"node_name: '{{ nope }}'", 1, "renew_kubelet_client.node_name", "undefined variable"},
		{"kubelet_pki: var/lib/kubelet/pki", 1, "renew_kubelet_client.kubelet_pki", "absolute path"},
		{"kubelet_conf: kubelet.conf", 1, "renew_kubelet_client.kubelet_conf", "absolute path"},
		{"\nrestart: 'systemctl restart {{ nope }}'", 2, "renew_kubelet_client.restart", "undefined variable"},
		{"certs: [kubelet]", 1, "renew_kubelet_client.certs", "unknown key"},
	}
	for _, c := range bad {
		t.Run("bad/"+c.params, func(t *testing.T) {
			_, err := buildStep("renew_kubelet_client", c.params)
			var ye *yamlx.Error
			if !errors.As(err, &ye) {
				t.Fatalf("want a *yamlx.Error, got %T %v", err, err)
			}
			if ye.Line != c.line || ye.Key != c.key || !strings.Contains(ye.Msg, c.msg) {
				t.Errorf("got line %d key %q msg %q; want line %d key %q msg ~%q", ye.Line, ye.Key, ye.Msg, c.line, c.key, c.msg)
			}
		})
	}
}

// rkcCA is a CA made by the test.
type rkcCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
	kpem []byte
}

// rkcNewCA makes an ECDSA CA valid for caValidity.
func rkcNewCA(t testing.TB, caValidity time.Duration) rkcCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(caValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	return rkcCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		kpem: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
}

// rkcClientCert makes a client certificate (certificate PEM, key PEM) for cn
// in system:nodes, signed by ca, valid from notAfter-1y to notAfter.
func rkcClientCert(t testing.TB, ca rkcCA, cn string, notAfter time.Time) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// rkcKubeletConf is a kubelet.conf as `kubeadm init phase kubeconfig kubelet` writes it.
func rkcKubeletConf(ca rkcCA, node string, certPEM, keyPEM []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return []byte(`apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ` + b64(ca.pem) + `
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:node:` + node + `
  name: system:node:` + node + `@kubernetes
current-context: system:node:` + node + `@kubernetes
kind: Config
preferences: {}
users:
- name: system:node:` + node + `
  user:
    client-certificate-data: ` + b64(certPEM) + `
    client-key-data: ` + b64(keyPEM) + `
`)
}

// rkcHost describes the kubelet set-up of a test host.
type rkcHost struct {
	name     string        // inventory name; "" is cp1
	cn       string        // CN of the kubelet client certificate; "" is system:node:cp1
	left     time.Duration // the certificate's NotAfter - now
	noCert   bool          // no kubelet-client-current.pem
	noCAKey  bool          // external CA
	conf     []byte        // kubelet.conf; nil is kubeadm's
	relative bool          // a relative symlink, as the testbed makes
	regular  bool          // kubelet-client-current.pem is a file, not a symlink
}

// newKubeletHost returns a fake host with a CA, a kubelet client
// certificate (kubelet-client-2025-01-01-00-00-00.pem and an absolute
// kubelet-client-current.pem symlink, as the kubelet makes them) and kubelet.conf.
func newKubeletHost(t testing.TB, o rkcHost) (*fakeHost, rkcCA) {
	t.Helper()
	h := newFakeHost(t)
	if o.name != "" {
		h.name = o.name
	}
	if o.cn == "" {
		o.cn = "system:node:cp1"
	}
	ca := rkcNewCA(t, 10*365*24*time.Hour)
	pki := filepath.Join(h.root, "etc/kubernetes/pki")
	kp := filepath.Join(h.root, "var/lib/kubelet/pki")
	for _, d := range []string{pki, kp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{filepath.Join(pki, "ca.crt"): ca.pem}
	if !o.noCAKey {
		files[filepath.Join(pki, "ca.key")] = ca.kpem
	}
	certPEM, keyPEM := rkcClientCert(t, ca, o.cn, time.Now().Add(o.left))
	conf := o.conf
	if conf == nil {
		conf = rkcKubeletConf(ca, "cp1", certPEM, keyPEM)
	}
	files[filepath.Join(h.root, "etc/kubernetes/kubelet.conf")] = conf
	if !o.noCert {
		files[filepath.Join(kp, "kubelet-client-2025-01-01-00-00-00.pem")] = append(append([]byte{}, certPEM...), keyPEM...)
	}
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if o.regular {
		if err := os.WriteFile(filepath.Join(kp, "kubelet-client-current.pem"), append(append([]byte{}, certPEM...), keyPEM...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !o.noCert && !o.regular {
		target := "/var/lib/kubelet/pki/kubelet-client-2025-01-01-00-00-00.pem"
		if o.relative {
			target = "kubelet-client-2025-01-01-00-00-00.pem"
		}
		if err := os.Symlink(target, filepath.Join(kp, "kubelet-client-current.pem")); err != nil {
			t.Fatal(err)
		}
	}
	return h, ca
}

func TestRenewKubeletClientSkipLogic(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	cases := []struct {
		name   string
		host   rkcHost
		params string
		skip   string // the plan and Apply skip with a reason containing this
		err    string // the plan and Apply fail with an error containing this
		node   string // else the plan would renew for system:node:NODE
		detail string // … with a detail containing this
	}{
		{name: "valid 30d within 7d", host: rkcHost{left: 30 * day}, skip: "beyond within 7d"},
		{name: "valid 30d within 60d", host: rkcHost{left: 30 * day}, params: "within: 60d", node: "cp1", detail: "expires "},
		{name: "valid 3d within 7d", host: rkcHost{left: 3 * day}, node: "cp1", detail: "(in 2 days)"},
		{name: "expired", host: rkcHost{left: -2 * day}, node: "cp1", detail: "(2 days ago)"},
		{name: "valid 1h within 0", host: rkcHost{left: time.Hour}, params: "within: 0s", skip: "beyond within 0s"},
		{name: "expired within 0", host: rkcHost{left: -time.Minute}, params: "within: 0s", node: "cp1", detail: "EXPIRED"},
		{name: "missing", host: rkcHost{noCert: true}, node: "cp1", detail: "kubelet-client-current.pem: missing"},
		{name: "node from the CN", host: rkcHost{cn: "system:node:worker-7", left: -day}, node: "worker-7", detail: "from the current certificate's CN"},
		{name: "CN not a node", host: rkcHost{cn: "kubelet", left: -day}, node: "cp1", detail: "from the inventory name"},
		{name: "node_name wins", host: rkcHost{cn: "system:node:worker-7", left: -day}, params: "node_name: cp9", node: "cp9", detail: "from node_name"},
		{name: "CA validity cuts", host: rkcHost{left: -day}, params: "validity: 7300d", node: "cp1", detail: "validity cut from 7300d to 36"},
		{name: "external CA expired", host: rkcHost{noCAKey: true, left: -day}, err: "external CA: /etc/kubernetes/pki/ca.key is absent"},
		{name: "external CA valid", host: rkcHost{noCAKey: true, left: 300 * day}, skip: "valid until"},
		{name: "bad inventory name", host: rkcHost{name: "CP_1", noCert: true}, err: `node name "CP_1" (from the inventory name) is not a node name`},
		{name: "bad CN", host: rkcHost{cn: "system:node:Bad_Name", left: -day}, err: "set node_name"},
		{name: "JSON kubelet.conf", host: rkcHost{left: -day, conf: []byte(`{"apiVersion":"v1","kind":"Config","users":[{"name":"n","user":{"client-key-data":"c2VjcmV0"}}]}`)},
			err: "not block-style YAML"},
		{name: "kubelet.conf with another secret", host: rkcHost{left: -day, conf: []byte("users:\n- name: a\n  user:\n    client-certificate: /x\n- name: b\n  user:\n    token: s3cr3t\n")},
			err: `holds a secret (client-key-data, token or password) outside user "a"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newKubeletHost(t, c.host)
			before := snapshot(t, h)
			s := newStep(t, "renew_kubelet_client", c.params)
			p, err := s.Plan(testCtx(t), h.target())
			switch {
			case c.err != "":
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "nothing was changed") {
					t.Errorf("plan: err = %v, want one containing %q", err, c.err)
				}
			case err != nil:
				t.Fatalf("plan: %v", err)
			case c.skip != "":
				if p.WouldChange || !strings.HasPrefix(p.Summary, "would skip: ") || !strings.Contains(p.Summary, c.skip) ||
					!regexp.MustCompile(`valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+ days\)`).MatchString(p.Summary) {
					t.Errorf("plan: %+v, want a skip containing %q and the expiry", p, c.skip)
				}
			default:
				all := p.Summary + "\n" + strings.Join(p.Details, "\n")
				if !p.WouldChange || !strings.Contains(p.Summary, "for system:node:"+c.node+" ") || !strings.Contains(all, c.detail) {
					t.Errorf("plan: %s\nwant system:node:%s and %q", all, c.node, c.detail)
				}
				info, ok := p.Data.(KubeletClientRenewal)
				if !ok || info.Node != c.node || info.NewNotAfter == nil || (c.host.noCert != (info.OldNotAfter == nil)) {
					t.Errorf("plan data: %#v", p.Data)
				}
			}
			// Apply skips with the same reason, and fails before changing anything.
			if c.skip != "" || c.err != "" {
				r, err := s.Apply(testCtx(t), h.target())
				reason, skipped := IsSkip(err)
				switch {
				case c.skip != "" && (!skipped || !strings.Contains(reason, c.skip) || r.Changed || r.Undo != nil):
					t.Errorf("apply: %+v %v, want a skip", r, err)
				case c.err != "" && (err == nil || skipped || !strings.Contains(err.Error(), c.err)):
					t.Errorf("apply: %v, want %q", err, c.err)
				}
			}
			if d := diffSnapshots(before, snapshot(t, h)); len(d) > 0 {
				t.Errorf("the host changed: %v", d)
			}
			h.assertNoSecrets(t, nil)
			for _, r := range h.runs() {
				if strings.Contains(string(r.out), "c2VjcmV0") || strings.Contains(string(r.out), "s3cr3t") {
					t.Errorf("a secret came back: %.200q", r.out)
				}
			}
		})
	}
}

// rkcState is what the test reads of the host's kubelet credential.
type rkcState struct {
	link     string
	file     string // the link's target on the controller
	cert     *x509.Certificate
	pair     tls.Certificate
	pairErr  error
	mode     os.FileMode
	confUser map[string]any
}

// rkcRead reads the kubelet credential of a fake host, as the kubelet would.
func rkcRead(t *testing.T, h *fakeHost) rkcState {
	t.Helper()
	var st rkcState
	kp := filepath.Join(h.root, "var/lib/kubelet/pki")
	var err error
	if st.link, err = os.Readlink(filepath.Join(kp, "kubelet-client-current.pem")); err != nil {
		t.Fatal(err)
	}
	st.file = filepath.Join(kp, filepath.Base(st.link))
	fi, err := os.Stat(st.file)
	if err != nil {
		t.Fatal(err)
	}
	st.mode = fi.Mode().Perm()
	data, err := os.ReadFile(st.file)
	if err != nil {
		t.Fatal(err)
	}
	st.pair, st.pairErr = tls.X509KeyPair(data, data)
	blk, _ := pem.Decode(data)
	if blk == nil {
		t.Fatalf("%s holds no PEM", st.file)
	}
	if st.cert, err = x509.ParseCertificate(blk.Bytes); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(h.root, "etc/kubernetes/kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseKubeconfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Users) > 0 {
		st.confUser, _ = k.Users[0].Rest["user"].(map[string]any)
	}
	return st
}

func TestRenewKubeletClientApplyUndo(t *testing.T) {
	t.Parallel()
	const cur = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	cases := []struct {
		name     string
		host     rkcHost
		relative bool // the new link is relative
	}{
		{name: "absolute link", host: rkcHost{}},
		{name: "relative link", host: rkcHost{relative: true}, relative: true},
		{name: "regular file", host: rkcHost{regular: true}},
		{name: "missing", host: rkcHost{noCert: true}},
		// kubelet.conf already names the file (kubeadm's state after its
		// kubelet-finalize phase): it is left as it is.
		{name: "kubelet.conf already uses the file", host: rkcHost{conf: []byte("apiVersion: v1\nkind: Config\nusers:\n- name: system:node:cp1\n  user:\n    client-certificate: " + cur + "\n    client-key: " + cur + "\n")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.host.left = -3 * 24 * time.Hour
			h, ca := newKubeletHost(t, c.host)
			before := snapshot(t, h)
			oldLink, _ := os.Readlink(filepath.Join(h.root, "var/lib/kubelet/pki/kubelet-client-current.pem"))
			confBefore, err := os.ReadFile(filepath.Join(h.root, "etc/kubernetes/kubelet.conf"))
			if err != nil {
				t.Fatal(err)
			}
			tg := h.target()
			s := newStep(t, "renew_kubelet_client", "restart: echo restarted >> /var/lib/restarts\nvalidity: 30d")
			r, err := s.Apply(testCtx(t), tg)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Changed || r.Undo == nil || !strings.Contains(r.Message, "system:node:cp1 renewed") {
				t.Fatalf("result: %+v", r)
			}
			t.Logf("%s\n%s", r.Message, strings.Join(r.Details, "\n"))
			st := rkcRead(t, h)
			pool := x509.NewCertPool()
			pool.AddCert(ca.cert)
			_, verr := st.cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			switch {
			case st.link == oldLink || filepath.IsAbs(st.link) == c.relative:
				t.Errorf("link %q (was %q)", st.link, oldLink)
			case st.cert.Subject.CommonName != "system:node:cp1" || !reflect.DeepEqual(st.cert.Subject.Organization, []string{"system:nodes"}):
				t.Errorf("subject %s", st.cert.Subject)
			case verr != nil:
				t.Errorf("does not chain to the CA: %v", verr)
			case st.pairErr != nil:
				t.Errorf("certificate and key do not match: %v", st.pairErr)
			case st.mode != 0o600:
				t.Errorf("mode %v", st.mode)
			case st.cert.NotAfter.Sub(st.cert.NotBefore) != 30*24*time.Hour || time.Until(st.cert.NotAfter) < 29*24*time.Hour:
				t.Errorf("valid %s to %s", st.cert.NotBefore, st.cert.NotAfter)
			case st.cert.PublicKeyAlgorithm != x509.ECDSA:
				t.Errorf("key %v, want ECDSA", st.cert.PublicKeyAlgorithm)
			}
			if st.confUser["client-certificate"] != cur || st.confUser["client-key"] != cur || len(st.confUser) != 2 {
				t.Errorf("kubelet.conf user: %v", st.confUser)
			}
			if b, _ := os.ReadFile(filepath.Join(h.root, "var/lib/restarts")); string(b) != "restarted\n" {
				t.Errorf("restart ran: %q", b)
			}
			confAfter, _ := os.ReadFile(filepath.Join(h.root, "etc/kubernetes/kubelet.conf"))
			if c.host.conf != nil && string(confAfter) != string(confBefore) {
				t.Errorf("kubelet.conf was rewritten though it already used the file:\n%s", confAfter)
			}
			info := r.Data.(KubeletClientRenewal)
			if (info.OldNotAfter == nil) != c.host.noCert || info.PreviousTarget != oldLink || info.NewNotAfter == nil || !info.NewNotAfter.Equal(st.cert.NotAfter) ||
				info.Subject != "CN=system:node:cp1,O=system:nodes" || info.Backup == "" || info.SHA256 != fingerprint(st.cert.Raw) {
				t.Errorf("data: %+v", info)
			}
			// The backup is root's only; its restore.sh is what Restore names.
			if fi, err := os.Stat(h.path(info.Backup)); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("backup dir %s: %v %v", info.Backup, fi, err)
			}
			if !strings.Contains(r.Undo.Restore, info.Backup+"/restore.sh") {
				t.Errorf("restore hint: %s", r.Undo.Restore)
			}
			h.assertNoSecrets(t, nil)

			// Undo: byte for byte, and the kubelet restarted again.
			if err := r.Undo.Fn(testCtx(t), tg); err != nil {
				t.Fatal(err)
			}
			after := withoutPrefix(withoutPrefix(snapshot(t, h), "var/lib/kplay"), "var/lib/restarts")
			if d := diffSnapshots(before, after); len(d) > 0 {
				t.Errorf("undo left differences: %v", d)
			}
			if b, _ := os.ReadFile(filepath.Join(h.root, "var/lib/restarts")); string(b) != "restarted\nrestarted\n" {
				t.Errorf("undo did not restart: %q", b)
			}
			// restore.sh, as a person would run it, after a second Apply.
			r2, err := s.Apply(testCtx(t), tg)
			if err != nil {
				t.Fatal(err)
			}
			b2 := r2.Data.(KubeletClientRenewal).Backup
			if b2 == info.Backup {
				t.Errorf("two applies share the backup dir %s", b2)
			}
			if out, err := h.Run(testCtx(t), "sh "+b2+"/restore.sh"); err != nil || !strings.Contains(string(out), "now restart the kubelet: ") {
				t.Errorf("restore.sh: %v %s", err, out)
			}
			after = withoutPrefix(withoutPrefix(snapshot(t, h), "var/lib/kplay"), "var/lib/restarts")
			if d := diffSnapshots(before, after); len(d) > 0 {
				t.Errorf("restore.sh left differences: %v", d)
			}
		})
	}
}

func TestRenewKubeletClientFailuresRestore(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		params  string
		mv      string // a script put first in PATH as mv
		wantErr string
		// restored: a *RestoredError; else nothing was changed (no backup either).
		restored bool
		restarts string
	}{
		// The restart fails once: everything is put back and restarted again.
		{name: "restart fails", params: "restart: 'if [ -e /var/lib/once ]; then echo ok >> /var/lib/restarts; else touch /var/lib/once; exit 7; fi'",
			wantErr: "exit status 7", restored: true, restarts: "ok\n"},
		// Replacing kubelet.conf fails half way: the script puts the link back itself.
		{name: "switch fails", mv: "#!/bin/sh\nfor a; do l=$a; done\ncase $l in */kubelet.conf) if [ ! -e /var/lib/mvfailed ]; then touch /var/lib/mvfailed; echo 'mv: disk on fire' >&2; exit 1; fi;; esac\nexec /bin/mv \"$@\"\n",
			params: "restart: 'echo ok >> /var/lib/restarts'", wantErr: "disk on fire", restored: true},
		// Signing fails (a CA key that is not the CA's): nothing changed.
		{name: "signing fails", mv: "", params: "restart: 'echo ok >> /var/lib/restarts'", wantErr: "nothing was changed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newKubeletHost(t, rkcHost{left: -time.Hour})
			if c.mv != "" {
				if err := os.WriteFile(filepath.Join(h.bin, "mv"), []byte(c.mv), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if c.name == "signing fails" {
				other := rkcNewCA(t, time.Hour)
				if err := os.WriteFile(filepath.Join(h.root, "etc/kubernetes/pki/ca.key"), other.kpem, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshot(t, h)
			r, err := newStep(t, "renew_kubelet_client", c.params).Apply(testCtx(t), h.target())
			var re *RestoredError
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || errors.As(err, &re) != c.restored || r.Undo != nil {
				t.Fatalf("err = %v (%T), want one containing %q, restored %v", err, err, c.wantErr, c.restored)
			}
			t.Logf("error: %v", err)
			after := snapshot(t, h)
			for _, p := range []string{"var/lib/once", "var/lib/mvfailed", "var/lib/restarts"} {
				after = withoutPrefix(after, p)
			}
			if c.restored {
				after = withoutPrefix(after, "var/lib/kplay")
			}
			if d := diffSnapshots(before, after); len(d) > 0 {
				t.Errorf("the host was not left as it was: %v", d)
			}
			if b, _ := os.ReadFile(filepath.Join(h.root, "var/lib/restarts")); string(b) != c.restarts {
				t.Errorf("restarts: %q, want %q", b, c.restarts)
			}
			h.assertNoSecrets(t, nil)
		})
	}
}

func TestKubeletClientConf(t *testing.T) {
	t.Parallel()
	const file = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	cases := []struct {
		name, in string
		same     bool   // already uses file: no change
		note     string // the note contains this
		err      string
		user     string // the user that ends up with the file
	}{
		{name: "kubeadm's embedded data", in: "users:\n- name: system:node:cp1\n  user:\n    client-certificate-data: Y2VydA==\n    kplay-redacted-5: secret\n",
			note: "embedded client-certificate-data/client-key-data", user: "system:node:cp1"},
		{name: "already", in: "users:\n- name: u\n  user:\n    client-certificate: " + file + "\n    client-key: " + file + "\n", same: true, note: "already uses"},
		{name: "other files", in: "users:\n- name: u\n  user:\n    client-certificate: /a.crt\n    client-key: /a.key\n    username: keep\n",
			note: `client-certificate "/a.crt"`, user: "u"},
		{name: "empty user", in: "users:\n- name: u\n  user: {}\n", note: "no client certificate", user: "u"},
		{name: "current context's user", in: "current-context: c\ncontexts:\n- name: c\n  context: {user: b}\nusers:\n- name: a\n  user: {client-certificate: /x}\n- name: b\n  user: {client-certificate-data: eA==}\n",
			note: `user "b"`, user: "b"},
		{name: "no users", in: "apiVersion: v1\nkind: Config\n", err: "no users"},
		{name: "secret elsewhere", in: "users:\n- name: a\n  user: {}\n- name: b\n  user:\n    kplay-redacted-6: secret\n", err: "outside user \"a\""},
		{name: "not yaml", in: "users: [\n", err: "parsing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, note, err := kubeletClientConf([]byte(c.in), file)
			switch {
			case c.err != "":
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("err = %v, want %q", err, c.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case !strings.Contains(note, c.note):
				t.Errorf("note %q, want %q", note, c.note)
			case c.same:
				if out != nil {
					t.Errorf("rewrote a kubelet.conf that already uses the file:\n%s", out)
				}
				return
			}
			if strings.Contains(string(out), kubeletClientRedacted) || strings.Contains(string(out), "-data") {
				t.Errorf("the new kubelet.conf keeps embedded data:\n%s", out)
			}
			if err := checkKubeletClientConf(out, file); err != nil {
				t.Errorf("check: %v\n%s", err, out)
			}
			k, err := parseKubeconfig(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range k.Users {
				m, _ := u.Rest["user"].(map[string]any)
				if uses := m["client-certificate"] == file && m["client-key"] == file; uses != (u.Name == c.user) {
					t.Errorf("user %s: %v", u.Name, m)
				}
				if u.Name == "u" && c.name == "other files" && m["username"] != "keep" {
					t.Errorf("other keys of the user were lost: %v", m)
				}
			}
		})
	}
	// checkKubeletClientConf fails on what Apply must not accept.
	for _, in := range []string{
		"users:\n- name: u\n  user:\n    client-certificate: /x\n    client-key: " + file + "\n",
		"users:\n- name: u\n  user:\n    client-certificate: " + file + "\n    client-key: " + file + "\n    client-key-data: eA==\n",
	} {
		if err := checkKubeletClientConf([]byte(in), file); err == nil {
			t.Errorf("check accepted %q", in)
		}
	}
}
