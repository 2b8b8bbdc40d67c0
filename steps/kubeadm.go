package steps

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

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

// kubeconfigDoc is the part of a kubeconfig needed to find its client certificate.
type kubeconfigDoc struct {
	CurrentContext string `yaml:"current-context"`
	Contexts       []struct {
		Name    string `yaml:"name"`
		Context struct {
			User string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			ClientCertificateData string `yaml:"client-certificate-data"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// kubeconfigClientCert returns the PEM client certificate of the current
// context's user (or the first user that has one).
func kubeconfigClientCert(data []byte) ([]byte, error) {
	var k kubeconfigDoc
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	want := ""
	for _, c := range k.Contexts {
		if c.Name == k.CurrentContext {
			want = c.Context.User
		}
	}
	var enc string
	for _, u := range k.Users {
		if u.User.ClientCertificateData == "" {
			continue
		}
		if u.Name == want || enc == "" {
			enc = u.User.ClientCertificateData
		}
	}
	if enc == "" {
		return nil, fmt.Errorf("no client-certificate-data")
	}
	pemData, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return nil, fmt.Errorf("client-certificate-data: %w", err)
	}
	return pemData, nil
}

// fingerprint is the hex SHA-256 of a DER certificate.
func fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}
