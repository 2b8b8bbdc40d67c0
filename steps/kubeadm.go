package steps

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/kplay/kplay/internal/shellquote"
)

// Defaults shared by the kubeadm step types.
const (
	// DefaultKubernetesDir is where kubeadm keeps pki/, manifests/ and the kubeconfigs.
	DefaultKubernetesDir = "/etc/kubernetes"
	// DefaultKubeletPKI is where kubelet keeps its client certificate.
	DefaultKubeletPKI = "/var/lib/kubelet/pki"
	// DefaultBackupDir is the root under which each run's backup is written.
	DefaultBackupDir = "/var/lib/kplay/backups"
)

// newMarker returns a random line prefix that file contents cannot collide with.
func newMarker() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "#kplay-" + hex.EncodeToString(b[:])
}

// sh wraps a POSIX script as one command for the host's login shell.
func sh(script string) string { return "sh -c " + shellquote.Quote(script) }

// kubeconfigClientCert returns the PEM client certificate of a kubeconfig's
// current user (kcFile.clientCertPEM).
func kubeconfigClientCert(data []byte) ([]byte, error) {
	k, err := parseKubeconfig(data)
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	return k.clientCertPEM()
}

// fingerprint is the hex SHA-256 of a DER certificate.
func fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}
