package testbed

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// KubeLiteOptions says how AddKubeLite sets hosts up.
type KubeLiteOptions struct {
	// CertValidity is kubeadm's certificateValidityPeriod; 0 means one year.
	CertValidity time.Duration
	// KeyAlgorithm is kubeadm's encryptionAlgorithm; "" means RSA-2048.
	KeyAlgorithm string
	// Kubeadm is the kubeadm binary; default as Options.Kubeadm.
	Kubeadm string
	// ModuleDir is the kplay module root; default as Options.ModuleDir.
	ModuleDir string
}

// AddKubeLite is a light kube set-up for beds of many hosts (make bench): it
// puts kubeadm on every host's PATH (/usr/local/bin), has kubeadm make one
// PKI (`kubeadm init phase certs all`) on the first host, and copies that
// /etc/kubernetes/pki to every other host. No kubeconfigs, manifests,
// kubelet or apiserver: the hosts have the files read-only probes read
// (apiserver.crt, the CAs, ...) at the cost of one kubeadm run, whatever
// the number of hosts. Call it on a bed started without Options.Kube.
func (b *Bed) AddKubeLite(ctx context.Context, o KubeLiteOptions) error {
	if len(b.Hosts) == 0 {
		return fmt.Errorf("testbed %s: kube lite: no hosts", b.st.Prefix)
	}
	kubeadm, err := kubeadmBinary(ctx, &Options{Kubeadm: o.Kubeadm, ModuleDir: o.ModuleDir})
	if err != nil {
		return fmt.Errorf("testbed %s: kube lite: %w", b.st.Prefix, err)
	}
	if err := linkOrCopy(kubeadm, filepath.Join(b.Dir, "bin", "kubeadm")); err != nil {
		return fmt.Errorf("testbed %s: kube lite: install kubeadm: %w", b.st.Prefix, err)
	}
	first := b.Hosts[0]
	cfg := kubeadmConfig(&Options{CertValidity: o.CertValidity, KeyAlgorithm: o.KeyAlgorithm}, &b.st.Hosts[0])
	if err := os.WriteFile(first.Path(KubeadmConfigPath), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("testbed %s: kube lite: kubeadm config: %w", b.st.Prefix, err)
	}
	if _, err := first.Exec(ctx, "kubeadm", "init", "phase", "certs", "all", "--config", KubeadmConfigPath); err != nil {
		return fmt.Errorf("testbed %s: kube lite: %w", b.st.Prefix, err)
	}
	src := first.Path("/etc/kubernetes/pki")
	var files []string
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(src, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testbed %s: kube lite: list PKI: %w", b.st.Prefix, err)
	}
	return parallel(ctx, len(b.Hosts)-1, 2*runtime.NumCPU(), func(ctx context.Context, i int) error {
		h := b.Hosts[i+1]
		for _, f := range files {
			if err := copyFile(filepath.Join(src, f), h.Path("/etc/kubernetes/pki/"+f)); err != nil {
				return fmt.Errorf("host %s: %w", h.Name, err)
			}
		}
		return nil
	})
}

// kubeadmBinary returns the kubeadm to install: o.Kubeadm, else
// $KPLAY_KUBEADM, else the one testbed/build/k8s.sh builds and caches.
func kubeadmBinary(ctx context.Context, o *Options) (string, error) {
	if o.Kubeadm != "" {
		return o.Kubeadm, nil
	}
	if p := os.Getenv("KPLAY_KUBEADM"); p != "" {
		return p, nil
	}
	mod, err := moduleDir(ctx, o)
	if err != nil {
		return "", err
	}
	script := filepath.Join(mod, "testbed", "build", "k8s.sh")
	cmd := exec.CommandContext(ctx, "bash", script, "kubeadm")
	cmd.Env = append(os.Environ(), "K8S_VERSION="+KubernetesVersion)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("get kubeadm with %s: %w: %s", script, err, lastLines(stderr.String(), 20))
	}
	return strings.TrimSpace(string(out)), nil
}
