package steps

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"
)

// kcNamed is one named entry of a kubeconfig list (cluster, user or context),
// with every other field kept as is.
type kcNamed struct {
	Name string         `yaml:"name"`
	Rest map[string]any `yaml:",inline"`
}

// kcFile is a kubeconfig, with unknown top-level fields kept as is.
type kcFile struct {
	APIVersion     string         `yaml:"apiVersion,omitempty"`
	Kind           string         `yaml:"kind,omitempty"`
	Clusters       []kcNamed      `yaml:"clusters"`
	Contexts       []kcNamed      `yaml:"contexts"`
	Users          []kcNamed      `yaml:"users"`
	CurrentContext string         `yaml:"current-context"`
	Rest           map[string]any `yaml:",inline"`
}

// parseKubeconfig parses a kubeconfig file (YAML or JSON). Empty input is an empty config.
func parseKubeconfig(data []byte) (*kcFile, error) {
	var k kcFile
	if len(bytes.TrimSpace(data)) == 0 {
		return &k, nil
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// marshal writes the kubeconfig as YAML with two-space indentation.
func (k *kcFile) marshal() ([]byte, error) {
	if k.APIVersion == "" {
		k.APIVersion = "v1"
	}
	if k.Kind == "" {
		k.Kind = "Config"
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(k); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// mergeNamed replaces entries of the same name and appends new ones, keeping order.
func mergeNamed(old, add []kcNamed) []kcNamed {
	out := slices.Clone(old)
	for _, a := range add {
		i := slices.IndexFunc(out, func(o kcNamed) bool { return o.Name == a.Name })
		if i >= 0 {
			out[i] = a
		} else {
			out = append(out, a)
		}
	}
	return out
}

// mergeKubeconfig merges add into base: clusters, users and contexts of the
// same names are replaced, others kept; base's current-context is kept unless empty.
func mergeKubeconfig(base, add *kcFile) *kcFile {
	out := *base
	out.Clusters = mergeNamed(base.Clusters, add.Clusters)
	out.Users = mergeNamed(base.Users, add.Users)
	out.Contexts = mergeNamed(base.Contexts, add.Contexts)
	if out.CurrentContext == "" {
		out.CurrentContext = add.CurrentContext
	}
	return &out
}

// setServer points every cluster of k at server.
func (k *kcFile) setServer(server string) {
	for i := range k.Clusters {
		c, _ := k.Clusters[i].Rest["cluster"].(map[string]any)
		if c == nil {
			c = map[string]any{}
		}
		c["server"] = server
		k.Clusters[i].Rest["cluster"] = c
	}
}

// kcCredential is what verifying a kubeconfig needs: the current context's
// server, CA and client key pair.
type kcCredential struct {
	Context, Cluster, User string
	Server                 string
	Insecure               bool
	CAs                    *x509.CertPool
	Cert                   tls.Certificate
}

// str returns m[key] as a string.
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// credential extracts the current context's credential from k.
func (k *kcFile) credential() (*kcCredential, error) {
	var cr kcCredential
	cr.Context = k.CurrentContext
	if cr.Context == "" && len(k.Contexts) == 1 {
		cr.Context = k.Contexts[0].Name
	}
	for _, c := range k.Contexts {
		if c.Name == cr.Context {
			ctx, _ := c.Rest["context"].(map[string]any)
			cr.Cluster, cr.User = str(ctx, "cluster"), str(ctx, "user")
		}
	}
	if cr.Cluster == "" || cr.User == "" {
		return nil, fmt.Errorf("context %q with a cluster and a user not found", cr.Context)
	}
	var cluster, user map[string]any
	for _, c := range k.Clusters {
		if c.Name == cr.Cluster {
			cluster, _ = c.Rest["cluster"].(map[string]any)
		}
	}
	for _, u := range k.Users {
		if u.Name == cr.User {
			user, _ = u.Rest["user"].(map[string]any)
		}
	}
	if cluster == nil || user == nil {
		return nil, fmt.Errorf("cluster %q or user %q not found", cr.Cluster, cr.User)
	}
	cr.Server = str(cluster, "server")
	if cr.Server == "" {
		return nil, fmt.Errorf("cluster %q has no server", cr.Cluster)
	}
	cr.Insecure, _ = cluster["insecure-skip-tls-verify"].(bool)
	if ca := str(cluster, "certificate-authority-data"); ca != "" {
		pemData, err := base64.StdEncoding.DecodeString(ca)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: certificate-authority-data: %w", cr.Cluster, err)
		}
		cr.CAs = x509.NewCertPool()
		if !cr.CAs.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("cluster %q: certificate-authority-data holds no certificate", cr.Cluster)
		}
	}
	certData, err := base64.StdEncoding.DecodeString(str(user, "client-certificate-data"))
	if err != nil || len(certData) == 0 {
		return nil, fmt.Errorf("user %q: no usable client-certificate-data", cr.User)
	}
	keyData, err := base64.StdEncoding.DecodeString(str(user, "client-key-data"))
	if err != nil || len(keyData) == 0 {
		return nil, fmt.Errorf("user %q: no usable client-key-data", cr.User)
	}
	cr.Cert, err = tls.X509KeyPair(certData, keyData)
	if err != nil {
		// The error text of X509KeyPair never includes key material.
		return nil, fmt.Errorf("user %q: client certificate and key: %w", cr.User, err)
	}
	return &cr, nil
}
