package steps

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/hostexec"
)

// shellHost is a Host that runs each command with this machine's /bin/sh in
// dir, as the current user: no root, no namespaces. It records every output.
type shellHost struct {
	dir string

	mu   sync.Mutex
	outs [][]byte
}

// Name returns the inventory name.
func (h *shellHost) Name() string { return "local" }

// Address returns the address.
func (h *shellHost) Address() string { return "127.0.0.1" }

// Run runs cmd with /bin/sh -c, as an SSH server's login shell would.
func (h *shellHost) Run(ctx context.Context, cmd string) ([]byte, error) {
	return h.RunInput(ctx, cmd, nil)
}

// RunInput runs cmd with stdin.
func (h *shellHost) RunInput(ctx context.Context, cmd string, stdin []byte) ([]byte, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Dir = h.dir
	c.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	h.mu.Lock()
	h.outs = append(h.outs, append(stdout.Bytes(), stderr.Bytes()...))
	h.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), &hostexec.ExitError{Status: ee.ExitCode(), Stderr: hostexec.Tail(stderr.String(), 10)}
	}
	return stdout.Bytes(), err
}

// DialContext dials from this machine.
func (h *shellHost) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// ReadFile is not used by the probe.
func (h *shellHost) ReadFile(context.Context, string) ([]byte, error) {
	return nil, errors.New("shellHost: ReadFile not supported")
}

// WriteFile is not used by the probe.
func (h *shellHost) WriteFile(context.Context, string, []byte, fs.FileMode) error {
	return errors.New("shellHost: WriteFile not supported")
}

// testCert is a generated certificate with its key, in PEM.
type testCert struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// newTestCert makes a certificate for cn valid until notAfter, signed by
// parent (self-signed CA when parent is nil).
func newTestCert(t *testing.T, cn string, notAfter time.Time, parent *testCert) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notAfter.Add(-365 * 24 * time.Hour),
		NotAfter:     notAfter,
	}
	signer, signerCert := key, tmpl
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		cert: c, key: key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}
}

// writeFiles writes name → content under dir, making parent directories.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// testKubeconfig is a kubeadm-style kubeconfig with an embedded client certificate, key and token.
func testKubeconfig(ca, client testCert) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: %s
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
    token: canary-token-0123456789
`, b64(ca.certPEM), b64(client.certPEM), b64(client.keyPEM))
}

// spkiDigest is the hex SHA-256 of a certificate's DER public key, as the probe derives it from the private key.
func spkiDigest(c *x509.Certificate) string {
	s := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(s[:])
}

// TestProbeScriptRealShell runs scripts/probe.sh with /bin/sh against
// certificates generated in a temporary directory whose name needs quoting,
// and checks what readCerts makes of it.
func TestProbeScriptRealShell(t *testing.T) {
	t.Parallel()
	now := time.Now()
	root := t.TempDir()
	// A directory name that breaks anything not quoted as one word.
	kd := filepath.Join(root, `kube dir 'q' $(touch pwned) "x"`)
	kp := filepath.Join(root, "kubelet pki")
	ca := newTestCert(t, "kubernetes", now.Add(10*365*24*time.Hour), nil)
	etcdCA := newTestCert(t, "etcd-ca", now.Add(10*365*24*time.Hour), nil)
	apiserver := newTestCert(t, "kube-apiserver", now.Add(-3*time.Hour), &ca)
	etcdServer := newTestCert(t, "cp1", now.Add(48*time.Hour), &etcdCA)
	admin := newTestCert(t, "kubernetes-admin", now.Add(30*24*time.Hour), &ca)
	kubelet := newTestCert(t, "system:node:cp1", now.Add(12*time.Hour), &ca)
	writeFiles(t, kd, map[string][]byte{
		"pki/ca.crt":          ca.certPEM,
		"pki/ca.key":          ca.keyPEM,
		"pki/apiserver.crt":   apiserver.certPEM,
		"pki/apiserver.key":   apiserver.keyPEM,
		"pki/etcd/ca.crt":     etcdCA.certPEM,
		"pki/etcd/ca.key":     etcdCA.keyPEM,
		"pki/etcd/server.crt": etcdServer.certPEM,
		"pki/etcd/server.key": etcdServer.keyPEM,
		"admin.conf":          testKubeconfig(ca, admin),
		"kubeadm config.yaml": []byte("kind: ClusterConfiguration\ncertificateValidityPeriod: \"48h0m0s\"\n"),
	})
	// kubelet keeps its key in the same file as its certificate.
	writeFiles(t, kp, map[string][]byte{"kubelet-client-current.pem": append(append([]byte{}, kubelet.certPEM...), kubelet.keyPEM...)})
	_, err := exec.LookPath("openssl")
	haveOpenSSL := err == nil

	h := &shellHost{dir: root}
	o := probeOpts{kubeDir: kd, kubeletPKI: kp, keyDigests: true, config: filepath.Join(kd, "kubeadm config.yaml")}
	hc, err := readCerts(context.Background(), h, o, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "pwned")); err == nil {
		t.Error("a command substitution in the kubernetes dir's name ran on the host")
	}
	if d := hc.probe.hostNow.Sub(now); d < -2*time.Second || d > time.Minute {
		t.Errorf("host time %s, want about %s", hc.probe.hostNow, now)
	}
	if hc.probe.validity != "48h0m0s" {
		t.Errorf("validity %q, want 48h0m0s", hc.probe.validity)
	}
	wantKeys := map[string]bool{
		filepath.Join(kd, "pki/ca.key"): true, filepath.Join(kd, "pki/etcd/ca.key"): true, filepath.Join(kd, "pki/front-proxy-ca.key"): false,
	}
	for p, want := range wantKeys {
		if got, ok := hc.probe.caKeys[p]; !ok || got != want {
			t.Errorf("caKeys[%s] = %v (reported %v), want %v", p, got, ok, want)
		}
	}
	if haveOpenSSL {
		for p, c := range map[string]*x509.Certificate{
			filepath.Join(kd, "pki/apiserver.crt"):   apiserver.cert,
			filepath.Join(kd, "pki/etcd/server.crt"): etcdServer.cert,
			filepath.Join(kd, "admin.conf"):          admin.cert,
		} {
			if got := hc.probe.keyDigests[p]; got != spkiDigest(c) {
				t.Errorf("key digest of %s = %q, want %s", p, got, spkiDigest(c))
			}
		}
	} else if !hc.probe.noOpenSSL {
		t.Error("no openssl here, but the probe did not say noopenssl")
	}

	type want struct {
		kind             CertKind
		notAfter         time.Time
		ca               string
		daysLeft         int
		missing, expired bool
		renewable, isCA  bool
	}
	wants := map[string]want{
		"ca":                       {kind: KindCA, notAfter: ca.cert.NotAfter, daysLeft: 3649, isCA: true},
		"etcd-ca":                  {kind: KindCA, notAfter: etcdCA.cert.NotAfter, daysLeft: 3649, isCA: true},
		"apiserver":                {kind: KindPKI, notAfter: apiserver.cert.NotAfter, ca: "ca", daysLeft: -1, renewable: true, expired: true},
		"etcd-server":              {kind: KindPKI, notAfter: etcdServer.cert.NotAfter, ca: "etcd-ca", daysLeft: 1, renewable: true},
		"admin.conf":               {kind: KindKubeconfig, notAfter: admin.cert.NotAfter, ca: "ca", daysLeft: 29, renewable: true},
		"kubelet-client":           {kind: KindKubelet, notAfter: kubelet.cert.NotAfter, ca: "ca", daysLeft: 0},
		"super-admin.conf":         {kind: KindKubeconfig, ca: "ca", missing: true, renewable: true},
		"controller-manager.conf":  {kind: KindKubeconfig, ca: "ca", missing: true, renewable: true},
		"scheduler.conf":           {kind: KindKubeconfig, ca: "ca", missing: true, renewable: true},
		"front-proxy-ca":           {kind: KindCA, missing: true, isCA: true},
		"front-proxy-client":       {kind: KindPKI, ca: "front-proxy-ca", missing: true, renewable: true},
		"apiserver-etcd-client":    {kind: KindPKI, ca: "etcd-ca", missing: true, renewable: true},
		"apiserver-kubelet-client": {kind: KindPKI, ca: "ca", missing: true, renewable: true},
		"etcd-peer":                {kind: KindPKI, ca: "etcd-ca", missing: true, renewable: true},
		"etcd-healthcheck-client":  {kind: KindPKI, ca: "etcd-ca", missing: true, renewable: true},
	}
	l := hc.list()
	if len(l) != len(wants) {
		t.Errorf("got %d certificates, want %d: %+v", len(l), len(wants), l)
	}
	for _, c := range l {
		w, ok := wants[c.Name]
		if !ok {
			t.Errorf("unexpected certificate %q: %+v", c.Name, c)
			continue
		}
		if c.Kind != w.kind || c.Missing != w.missing || c.Expired != w.expired || c.Renewable != w.renewable ||
			c.IsCA != w.isCA || c.CA != w.ca || c.Host != "local" || !c.NotAfter.Equal(w.notAfter.UTC()) {
			t.Errorf("%s = %+v, want %+v", c.Name, c, w)
		}
		if c.DaysLeft != w.daysLeft {
			t.Errorf("%s: days left %d, want %d", c.Name, c.DaysLeft, w.daysLeft)
		}
		if !c.Missing && c.Path == "" {
			t.Errorf("%s: no path", c.Name)
		}
	}
	// NotAfter has whole seconds, so it passed 3h plus under a second ago.
	if c, _ := l.Find("apiserver"); c.ExpiredAgoSeconds != 3*3600 || c.DaysLeftText() != "EXPIRED 3h ago" {
		t.Errorf("apiserver expired %ds ago, cell %q; want 10800s and EXPIRED 3h ago", c.ExpiredAgoSeconds, c.DaysLeftText())
	}
	// Nothing secret came back: no key block, no client-key-data, no token.
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.outs) != 1 {
		t.Errorf("the probe ran %d commands, want 1", len(h.outs))
	}
	for _, out := range h.outs {
		for _, secret := range []string{"PRIVATE KEY", "client-key-data", "canary-token", base64.StdEncoding.EncodeToString(admin.keyPEM)[:40]} {
			if bytes.Contains(out, []byte(secret)) {
				t.Errorf("probe output carries %q", secret)
			}
		}
	}
}

// TestProbeScriptConfigUnreadable: a kubeadm config that cannot be read fails
// the probe with the file named, and a probe without keyDigests or config
// prints neither.
func TestProbeScriptConfigUnreadable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	kd := filepath.Join(root, "k8s")
	ca := newTestCert(t, "kubernetes", time.Now().Add(time.Hour), nil)
	writeFiles(t, kd, map[string][]byte{"pki/ca.crt": ca.certPEM})
	h := &shellHost{dir: root}
	nope := filepath.Join(root, "no such config.yaml")
	_, err := readCerts(context.Background(), h, probeOpts{kubeDir: kd, kubeletPKI: root, config: nope}, time.Now())
	var ee *hostexec.ExitError
	if !errors.As(err, &ee) || ee.Status != 2 || !strings.Contains(err.Error(), "kubeadm config "+nope+" is not readable") {
		t.Errorf("unreadable config: %v, want exit status 2 naming %s", err, nope)
	}

	m := newMarker()
	out, err := h.Run(context.Background(), probeScript(probeOpts{kubeDir: kd, kubeletPKI: root}, m))
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseProbe(out, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.keyDigests) != 0 || p.noOpenSSL || p.validity != "" || len(p.files) != 1 || p.files[0].path != filepath.Join(kd, "pki/ca.crt") {
		t.Errorf("plain probe: %+v", p)
	}
	if !bytes.Equal(p.files[0].data, ca.certPEM) {
		t.Errorf("ca.crt section = %q, want the PEM as written", p.files[0].data)
	}
}
