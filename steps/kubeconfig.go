package steps

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

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

// kcCurrent is the current context of a kubeconfig and the entries it names.
type kcCurrent struct {
	Context, Cluster, User string
	// cluster and user are the named entries' bodies; cluster is nil when
	// the context names no cluster that exists.
	cluster, user map[string]any
}

// current resolves the current context (a lone context when current-context
// is unset) to its user and cluster entries. It is the one place that
// decides which credential a kubeconfig stands for: checking its certificate
// and using it to call the API must never disagree.
func (k *kcFile) current() (*kcCurrent, error) {
	cur := &kcCurrent{Context: k.CurrentContext}
	if cur.Context == "" && len(k.Contexts) == 1 {
		cur.Context = k.Contexts[0].Name
	}
	for _, c := range k.Contexts {
		if c.Name == cur.Context {
			ctx, _ := c.Rest["context"].(map[string]any)
			cur.Cluster, cur.User = str(ctx, "cluster"), str(ctx, "user")
		}
	}
	if cur.User == "" {
		return nil, fmt.Errorf("context %q with a user not found", cur.Context)
	}
	for _, c := range k.Clusters {
		if c.Name == cur.Cluster {
			cur.cluster, _ = c.Rest["cluster"].(map[string]any)
		}
	}
	for _, u := range k.Users {
		if u.Name == cur.User {
			cur.user, _ = u.Rest["user"].(map[string]any)
		}
	}
	if cur.user == nil {
		return nil, fmt.Errorf("user %q of context %q not found", cur.User, cur.Context)
	}
	return cur, nil
}

// clientCertPEM returns the current user's client certificate (PEM). A user
// without client-certificate-data (a token, an exec plugin, a file path) is
// an error naming it: another user's certificate is never taken instead.
func (k *kcFile) clientCertPEM() ([]byte, error) {
	cur, err := k.current()
	if err != nil {
		return nil, err
	}
	return cur.certPEM()
}

// certPEM decodes the user's client-certificate-data.
func (cur *kcCurrent) certPEM() ([]byte, error) {
	enc := strings.TrimSpace(str(cur.user, "client-certificate-data"))
	if enc == "" {
		return nil, fmt.Errorf("user %q has no client-certificate-data", cur.User)
	}
	pemData, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("user %q: client-certificate-data: %w", cur.User, err)
	}
	return pemData, nil
}

// credential extracts the current context's credential from k.
func (k *kcFile) credential() (*kcCredential, error) {
	cur, err := k.current()
	if err != nil {
		return nil, err
	}
	cr := kcCredential{Context: cur.Context, Cluster: cur.Cluster, User: cur.User}
	cluster, user := cur.cluster, cur.user
	if cluster == nil {
		return nil, fmt.Errorf("cluster %q of context %q not found", cr.Cluster, cr.Context)
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
	certData, err := cur.certPEM()
	if err != nil {
		return nil, err
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
