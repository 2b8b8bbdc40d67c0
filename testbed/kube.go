package testbed

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

const (
	// KubernetesVersion is the kubeadm and kubernetesVersion the testbed uses.
	KubernetesVersion = "v1.34.4"
	// APIServerPort is the port of every kube host's apiserver stand-in.
	APIServerPort = 6443
	// KubeadmConfigPath is where each kube host keeps the kubeadm
	// configuration its certificates were made with.
	KubeadmConfigPath = "/etc/kubernetes/kubeadm-config.yaml"
	// KubeletClientCertPath is the kubelet client certificate (and key) on
	// each kube host; kubeadm does not renew it.
	KubeletClientCertPath = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	// kubeletSyncFile makes the kubelet stand-in reread manifests at once.
	kubeletSyncFile = "/run/kplay/kubelet-sync"
	// kubeletClientValidity is the kubelet client certificate's validity.
	kubeletClientValidity = 365 * 24 * time.Hour
)

// kubeadmConfig is a host's kubeadm v1beta4 InitConfiguration and
// ClusterConfiguration.
func kubeadmConfig(o *Options, hs *hostState) string {
	validity := ""
	if o.CertValidity > 0 {
		validity = "certificateValidityPeriod: " + o.CertValidity.String() + "\n"
	}
	algorithm := ""
	if o.KeyAlgorithm != "" {
		algorithm = "encryptionAlgorithm: " + o.KeyAlgorithm + "\n"
	}
	return `# Written by the kplay testbed; kubeadm made this host's certificates with it.
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: ` + hs.Address + `
  bindPort: 6443
nodeRegistration:
  name: ` + hs.Name + `
  criSocket: unix:///var/run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: ` + KubernetesVersion + `
clusterName: kplay-testbed
controlPlaneEndpoint: ` + hs.Address + `:6443
` + validity + algorithm + `apiServer:
  certSANs:
  - ` + hs.Address + `
  - ` + hs.Name + `
`
}

// installBinaries puts the host init and, for kube beds, kubeadm and the
// stand-ins into the bed's bin directory (the hosts' /usr/local/bin).
func installBinaries(ctx context.Context, o *Options, bin string) error {
	mod, err := moduleDir(ctx, o)
	if err != nil {
		return err
	}
	tools := map[string]string{"testbed/hostinit": "kplay-hostinit"}
	if o.Kube {
		tools["testbed/standin/kubelet"] = "kplay-kubelet"
		if !o.Real {
			tools["testbed/standin/apiserver"] = "kube-apiserver"
		}
	}
	for pkg, as := range tools {
		p, err := buildTool(ctx, mod, pkg)
		if err != nil {
			return err
		}
		if err := linkOrCopy(p, filepath.Join(bin, as)); err != nil {
			return fmt.Errorf("install %s: %w", as, err)
		}
	}
	if !o.Kube {
		return nil
	}
	if o.Real {
		if err := installRealBinaries(ctx, o, mod, bin); err != nil {
			return err
		}
	}
	kubeadm := o.Kubeadm
	if kubeadm == "" {
		kubeadm = os.Getenv("KPLAY_KUBEADM")
	}
	if kubeadm == "" {
		script := filepath.Join(mod, "testbed", "build", "k8s.sh")
		cmd := exec.CommandContext(ctx, "bash", script, "kubeadm")
		cmd.Env = append(os.Environ(), "K8S_VERSION="+KubernetesVersion)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("get kubeadm with %s: %w: %s", script, err, lastLines(stderr.String(), 20))
		}
		kubeadm = strings.TrimSpace(string(out))
	}
	if err := linkOrCopy(kubeadm, filepath.Join(bin, "kubeadm")); err != nil {
		return fmt.Errorf("install kubeadm: %w", err)
	}
	return nil
}

// setupKube makes every host a kubeadm control-plane node with shared CAs
// and waits until every apiserver answers /livez.
func (b *Bed) setupKube(ctx context.Context, o *Options, t0 time.Time) error {
	cfg := " --config " + KubeadmConfigPath
	first := b.Hosts[0]
	// The first host makes the cluster's CAs and service-account key along
	// with its own certificates; the others get copies, as in an HA control
	// plane, before they make theirs.
	if _, err := first.Exec(ctx, "kubeadm", "init", "phase", "certs", "all", "--config", KubeadmConfigPath); err != nil {
		return fmt.Errorf("host %s: kubeadm: %w", first.Name, err)
	}
	shared := []string{"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub"}
	caCert, caKey, err := loadCA(first.Path("/etc/kubernetes/pki"))
	if err != nil {
		return err
	}
	o.logf("testbed %s: %s made the CAs after %v", b.st.Prefix, first.Name, time.Since(t0).Round(time.Millisecond))
	err = parallel(ctx, len(b.Hosts), max(2, runtime.NumCPU()), func(ctx context.Context, i int) error {
		h := b.Hosts[i]
		phase := "apiserver"
		if o.Controllers {
			phase = "all"
		}
		script := "kubeadm init phase kubeconfig all" + cfg + " && kubeadm init phase control-plane " + phase + cfg
		if o.Real {
			// kubeadm's own etcd manifest; its extraArgs (kubeadm-config.yaml)
			// name every member.
			script += " && kubeadm init phase etcd local" + cfg
		}
		if i > 0 {
			for _, f := range shared {
				if err := copyFile(first.Path("/etc/kubernetes/pki/"+f), h.Path("/etc/kubernetes/pki/"+f)); err != nil {
					return fmt.Errorf("host %s: copy %s: %w", h.Name, f, err)
				}
			}
			script = "kubeadm init phase certs all" + cfg + " && " + script
		}
		if _, err := h.Exec(ctx, "bash", "-ec", script); err != nil {
			return fmt.Errorf("host %s: kubeadm: %w", h.Name, err)
		}
		if err := writeKubeletClientCert(h, caCert, caKey); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		// Have the kubelet stand-in start the apiserver now, not at its
		// next poll.
		return h.KubeletSync()
	})
	if err != nil {
		return err
	}
	o.logf("testbed %s: kubeadm done on every host after %v", b.st.Prefix, time.Since(t0).Round(time.Millisecond))
	if o.Real {
		return b.waitReal(ctx, o, t0)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	waitCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return parallel(waitCtx, len(b.Hosts), len(b.Hosts), func(ctx context.Context, i int) error {
		h := b.Hosts[i]
		var last error
		for {
			if last = livez(ctx, pool, h.Address); last == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("host %s: apiserver not live: %v (kubelet log: %s): %w", h.Name, last,
					tail(h.Path("/var/log/kubelet.log")), ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// KubeletSync makes the host's kubelet stand-in reread its manifests within
// about 0.1s instead of at its next poll.
func (h *Host) KubeletSync() error {
	if err := os.WriteFile(h.Path(kubeletSyncFile), nil, 0o644); err != nil {
		return fmt.Errorf("host %s: poke kubelet: %w", h.Name, err)
	}
	return nil
}

// livez asks an apiserver for /livez, verifying its certificate against the
// cluster CA.
func livez(ctx context.Context, pool *x509.CertPool, addr string) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: addr}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://%s:%d/livez", addr, APIServerPort), nil)
	if err != nil {
		return fmt.Errorf("livez request: %w", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("livez: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("livez: %s: %s", resp.Status, body)
	}
	return nil
}

// loadCA reads ca.crt and ca.key from a pki directory.
func loadCA(pki string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return nil, nil, fmt.Errorf("read CA: %w", err)
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return nil, nil, errors.New("read CA: ca.crt holds no PEM block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse ca.crt: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(pki, "ca.key"))
	if err != nil {
		return nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, errors.New("read CA key: ca.key holds no PEM block")
	}
	var key any
	switch kb.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("parse ca.key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("ca.key: %T cannot sign", key)
	}
	return cert, signer, nil
}

// writeKubeletClientCert gives a host a kubelet client certificate like the
// one kubelet's TLS bootstrap makes: ECDSA P-256, CN system:node:NAME,
// O system:nodes, in kubelet-client-DATE.pem with kubelet-client-current.pem
// a symlink to it.
func writeKubeletClientCert(h *Host, ca *x509.Certificate, caKey crypto.Signer) error {
	now := time.Now()
	data, _, err := signKubeletClient(h.Name, ca, caKey, now.Add(-5*time.Minute), now.Add(kubeletClientValidity))
	if err != nil {
		return err
	}
	dir := h.Path(filepath.Dir(KubeletClientCertPath))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("kubelet pki dir: %w", err)
	}
	name := "kubelet-client-" + now.UTC().Format("2006-01-02-15-04-05") + ".pem"
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		return fmt.Errorf("write kubelet client certificate: %w", err)
	}
	// Relative (the real kubelet's is absolute), so that it also resolves
	// through Host.Path on the controller.
	if err := os.Symlink(name, h.Path(KubeletClientCertPath)); err != nil {
		return fmt.Errorf("link kubelet client certificate: %w", err)
	}
	return nil
}

// signKubeletClient makes a kubelet client certificate and key for node
// (ECDSA P-256, CN system:node:NODE, O system:nodes) valid from notBefore to
// notAfter, signed by ca: the PEM certificate then key, and the certificate.
func signKubeletClient(node string, ca *x509.Certificate, caKey crypto.Signer, notBefore, notAfter time.Time) ([]byte, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("kubelet client key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("kubelet client serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		NotBefore:    notBefore.UTC(),
		NotAfter:     notAfter.UTC(),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign kubelet client certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse kubelet client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode kubelet client key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	return data, cert, nil
}

// ClusterCA reads the cluster CA certificate and key of a Kube host, from
// its directory on the controller.
func (h *Host) ClusterCA() (*x509.Certificate, crypto.Signer, error) {
	return loadCA(h.Path("/etc/kubernetes/pki"))
}

// KubeletClientFile is the controller-side path of the file the host's
// kubelet-client-current.pem points at.
func (h *Host) KubeletClientFile() (string, error) {
	cur := h.Path(KubeletClientCertPath)
	target, err := os.Readlink(cur)
	if err != nil {
		return "", fmt.Errorf("%s: kubelet-client-current.pem is not a symlink: %w", h.Name, err)
	}
	if filepath.IsAbs(target) {
		return h.Path(target), nil
	}
	return filepath.Join(filepath.Dir(cur), target), nil
}

// ExpireKubeletClient overwrites the file kubelet-client-current.pem points
// at with a certificate and key for system:node:NAME, signed by the cluster
// CA, that expired an hour ago: a node that was down past its rotation. It
// returns the new file's contents (certificate, then key) and certificate.
func (h *Host) ExpireKubeletClient() ([]byte, *x509.Certificate, error) {
	ca, caKey, err := h.ClusterCA()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	data, cert, err := signKubeletClient(h.Name, ca, caKey, now.Add(-366*24*time.Hour), now.Add(-time.Hour))
	if err != nil {
		return nil, nil, err
	}
	f, err := h.KubeletClientFile()
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(f, data, 0o600); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", h.Name, err)
	}
	return data, cert, nil
}

// linkOrCopy hard-links src to dst, or copies it if they are on different
// file systems.
func linkOrCopy(src, dst string) error {
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst)
}

// copyFile copies src to dst with src's mode.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
