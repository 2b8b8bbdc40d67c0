package steps

import (
	"path"
	"strings"
)

// certSpec is one certificate kubeadm manages.
type certSpec struct {
	name string   // kubeadm's name, as in `kubeadm certs renew NAME`
	rel  string   // path relative to the kubernetes dir
	kind CertKind // pki, kubeconfig or ca
	ca   string   // name of the CA that signs it; "" for CAs
}

// kubeadmCerts lists the certificates kubeadm manages, in kubeadm's order.
func kubeadmCerts() []certSpec {
	return []certSpec{
		{"admin.conf", "admin.conf", KindKubeconfig, "ca"},
		{"apiserver", "pki/apiserver.crt", KindPKI, "ca"},
		{"apiserver-etcd-client", "pki/apiserver-etcd-client.crt", KindPKI, "etcd-ca"},
		{"apiserver-kubelet-client", "pki/apiserver-kubelet-client.crt", KindPKI, "ca"},
		{"controller-manager.conf", "controller-manager.conf", KindKubeconfig, "ca"},
		{"etcd-healthcheck-client", "pki/etcd/healthcheck-client.crt", KindPKI, "etcd-ca"},
		{"etcd-peer", "pki/etcd/peer.crt", KindPKI, "etcd-ca"},
		{"etcd-server", "pki/etcd/server.crt", KindPKI, "etcd-ca"},
		{"front-proxy-client", "pki/front-proxy-client.crt", KindPKI, "front-proxy-ca"},
		{"scheduler.conf", "scheduler.conf", KindKubeconfig, "ca"},
		{"super-admin.conf", "super-admin.conf", KindKubeconfig, "ca"},
		{"ca", "pki/ca.crt", KindCA, ""},
		{"etcd-ca", "pki/etcd/ca.crt", KindCA, ""},
		{"front-proxy-ca", "pki/front-proxy-ca.crt", KindCA, ""},
	}
}

// renewableNames lists the names `kubeadm certs renew` accepts, besides "all".
func renewableNames() []string {
	var n []string
	for _, s := range kubeadmCerts() {
		if s.kind != KindCA {
			n = append(n, s.name)
		}
	}
	return n
}

// specByName finds a kubeadm certificate by name.
func specByName(name string) (certSpec, bool) {
	for _, s := range kubeadmCerts() {
		if s.name == name {
			return s, true
		}
	}
	return certSpec{}, false
}

// isRenewableName reports whether `kubeadm certs renew NAME` exists.
func isRenewableName(name string) bool {
	s, ok := specByName(name)
	return ok && s.kind != KindCA
}

// caKeyRel maps a CA name to its key file, relative to the kubernetes dir.
func caKeyRel(ca string) string {
	switch ca {
	case "etcd-ca":
		return "pki/etcd/ca.key"
	case "front-proxy-ca":
		return "pki/front-proxy-ca.key"
	}
	return "pki/ca.key"
}

// certName returns kubeadm's name for the file at p, and its spec if kubeadm knows it.
func certName(kind CertKind, p, kubeDir string) (string, certSpec) {
	rel := strings.TrimPrefix(strings.TrimPrefix(p, strings.TrimSuffix(kubeDir, "/")), "/")
	for _, s := range kubeadmCerts() {
		if s.rel == rel {
			return s.name, s
		}
	}
	switch kind {
	case KindKubelet:
		return "kubelet-client", certSpec{name: "kubelet-client", kind: KindKubelet}
	case KindKubeconfig:
		n := path.Base(p)
		return n, certSpec{name: n, kind: KindKubeconfig, ca: "ca"}
	}
	n := strings.TrimSuffix(rel, ".crt")
	if e, ok := strings.CutPrefix(n, "pki/etcd/"); ok {
		n = "etcd-" + e
	} else {
		n = strings.TrimPrefix(n, "pki/")
	}
	return n, certSpec{name: n, kind: kind}
}
