package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kubeadmBin returns the cached kubeadm built by testbed/build/k8s.sh.
func kubeadmBin(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("bash", "../testbed/build/k8s.sh", "kubeadm").Output()
	p := strings.TrimSpace(string(out))
	if err != nil || p == "" {
		skipOrFail(t, fmt.Sprintf("kubeadm is not available (testbed/build/k8s.sh kubeadm: %v): it is built from the Go module proxy; run testbed/build/k8s.sh kubeadm by hand to see why", err))
	}
	return p
}

// pkiOpts varies the generated PKI.
type pkiOpts struct {
	// caValidity is caCertificateValidityPeriod (kubeadm's default when empty).
	caValidity string
	// noKubelet leaves out kubelet-client-current.pem.
	noKubelet bool
}

// initConfig is the kubeadm config the test PKI is made with: 48h leaf certificates.
func initConfig(o pkiOpts) string {
	ca := ""
	if o.caValidity != "" {
		ca = "caCertificateValidityPeriod: " + o.caValidity + "\n"
	}
	return `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.213.250.1
  bindPort: 6443
nodeRegistration:
  name: cp1
  criSocket: unix:///run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.4
certificateValidityPeriod: 48h
` + ca + `apiServer:
  certSANs: ["127.0.0.1", "localhost"]
`
}

// renewConfig renews with kubeadm's default validity (one year).
const renewConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.4
`

// newPKIHost returns a fake host holding a real kubeadm PKI (48h leaf
// certificates), kubeconfigs, an apiserver manifest and a kubelet client certificate.
func newPKIHost(t testing.TB, o pkiOpts) *fakeHost {
	t.Helper()
	h := newFakeHost(t)
	k := kubeadmBin(t)
	if err := os.Symlink(k, filepath.Join(h.bin, "kubeadm")); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"init.yaml": initConfig(o), "renew.yaml": renewConfig} {
		if err := os.WriteFile(filepath.Join(h.root, "cfg", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(h.root, "cfg", "init.yaml")
	script := fmt.Sprintf(`set -e
kubeadm init phase certs all --config %[1]s >/dev/null
kubeadm init phase kubeconfig all --config %[1]s >/dev/null
kubeadm init phase control-plane apiserver --config %[1]s >/dev/null
`, cfg)
	if !o.noKubelet {
		script += `d=/var/lib/kubelet/pki; mkdir -p $d; cd $d
openssl req -new -newkey rsa:2048 -nodes -keyout k.pem -subj "/O=system:nodes/CN=system:node:cp1" -out r.csr 2>/dev/null
openssl x509 -req -in r.csr -CA /etc/kubernetes/pki/ca.crt -CAkey /etc/kubernetes/pki/ca.key -set_serial 0x$(openssl rand -hex 8) -days 1 -out c.pem 2>/dev/null
cat c.pem k.pem > kubelet-client-2026-01-01.pem; rm -f c.pem k.pem r.csr; chmod 600 kubelet-client-2026-01-01.pem
ln -s $d/kubelet-client-2026-01-01.pem kubelet-client-current.pem
`
	}
	if out, err := h.Run(context.Background(), script); err != nil {
		t.Fatalf("making the test PKI: %v\n%s", err, out)
	}
	h.log = nil
	return h
}

// snapshot describes every file under the host's /etc/kubernetes and
// /var/lib: content hash, mode and owner, or symlink target.
func snapshot(t testing.TB, h *fakeHost) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, top := range []string{"etc/kubernetes", "var/lib"} {
		base := filepath.Join(h.root, top)
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(h.root, p)
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			st := info.Sys().(*syscall.Stat_t)
			desc := fmt.Sprintf("%v %d:%d", info.Mode(), st.Uid, st.Gid)
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
			m[rel] = desc
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// diffSnapshots lists what differs between two snapshots.
func diffSnapshots(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q → %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	sort.Strings(d)
	return d
}

// withoutPrefix drops snapshot entries under prefix.
func withoutPrefix(m map[string]string, prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// ctx returns a test context with a deadline.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
