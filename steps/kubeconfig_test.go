package steps

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// TestKubeconfigOneCredential: checking a kubeconfig's certificate
// (kubeconfigClientCert) and using its credential (credential) resolve the
// same user, and both refuse when that user has no certificate instead of
// taking another user's.
func TestKubeconfigOneCredential(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	const admin, other = "ADMIN-CERT", "OTHER-CERT"
	doc := func(current, adminUser string) string {
		return "current-context: " + current + `
clusters:
- name: k
  cluster: {server: https://10.0.0.1:6443}
contexts:
- name: admin@k
  context: {cluster: k, user: admin}
- name: other@k
  context: {cluster: k, user: other}
users:
- name: admin
  user: ` + adminUser + `
- name: other
  user: {client-certificate-data: ` + b64(other) + `, client-key-data: ` + b64("k") + `}
`
	}
	tests := []struct {
		name, in string
		cert     string // what kubeconfigClientCert returns, or ""
		errHas   string // what both errors name
	}{
		{"current user has a cert", doc("admin@k", "{client-certificate-data: "+b64(admin)+"}"), admin, ""},
		{"other context is current", doc("other@k", "{token: t}"), other, ""},
		{"current user has a token only", doc("admin@k", "{token: t}"), "", `user "admin" has no client-certificate-data`},
		{"current user has a cert file", doc("admin@k", "{client-certificate: /a.crt}"), "", `user "admin" has no client-certificate-data`},
		{"unknown current context", doc("nope", "{token: t}"), "", `context "nope"`},
		{"lone context, no current", "clusters:\n- name: k\n  cluster: {server: https://10.0.0.1:6443}\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nusers:\n- name: u\n  user: {client-certificate-data: " + b64(admin) + "}\n", admin, ""},
		{"user entry missing", "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n", "", `user "u" of context "c" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kubeconfigClientCert([]byte(tt.in))
			switch {
			case tt.cert != "" && (err != nil || string(got) != tt.cert):
				t.Errorf("kubeconfigClientCert = %q, %v; want %q", got, err, tt.cert)
			case tt.cert == "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)):
				t.Errorf("kubeconfigClientCert = %q, %v; want an error naming %q", got, err, tt.errHas)
			}
			k, err := parseKubeconfig([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			cr, err := k.credential()
			if tt.cert == "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("credential() = %v, %v; want an error naming %q", cr, err, tt.errHas)
				}
				return
			}
			// The fixtures hold no real key pair: credential gets as far as
			// the pair and names the same user kubeconfigClientCert used.
			want := map[string]string{admin: "admin", other: "other"}[tt.cert]
			if !strings.Contains(tt.in, "current-context") {
				want = "u"
			}
			if err == nil || !strings.Contains(err.Error(), `user "`+want+`"`) {
				t.Errorf("credential() error %v; want it to reach user %q's key pair", err, want)
			}
		})
	}
}

// TestChooseNames: this cluster's entries take the names of entries already
// there for the same server, or names of their own; a name taken by an
// entry for another server is refused, never repointed.
func TestChooseNames(t *testing.T) {
	const me = "https://10.0.0.1:6443"
	kubeadmFor := func(server string) string {
		return "clusters:\n- name: kubernetes\n  cluster: {server: " + server + "}\n" +
			"contexts:\n- name: kubernetes-admin@kubernetes\n  context: {cluster: kubernetes, user: kubernetes-admin}\n" +
			"users:\n- name: kubernetes-admin\n  user: {token: t}\n"
	}
	tests := []struct {
		name, base, want string
		errHas           string
	}{
		{"empty kubeconfig", "", "10.0.0.1 kubernetes-admin@10.0.0.1 kubernetes-admin@10.0.0.1 false", ""},
		{"another kubeadm cluster", kubeadmFor("https://10.9.9.9:6443"), "10.0.0.1 kubernetes-admin@10.0.0.1 kubernetes-admin@10.0.0.1 false", ""},
		{"this cluster under kubeadm's names", kubeadmFor("https://10.0.0.1:6443/"), "kubernetes kubernetes-admin kubernetes-admin@kubernetes true", ""},
		{"this cluster, host in capitals", kubeadmFor("HTTPS://10.0.0.1:6443"), "kubernetes kubernetes-admin kubernetes-admin@kubernetes true", ""},
		{"name taken by another server", "clusters:\n- name: 10.0.0.1\n  cluster: {server: https://10.0.0.1:7443}\n", "", `cluster "10.0.0.1" in the kubeconfig is https://10.0.0.1:7443`},
		{"user taken by another cluster", "clusters:\n- name: x\n  cluster: {server: https://x}\ncontexts:\n- name: c\n  context: {cluster: x, user: kubernetes-admin@10.0.0.1}\n", "", `user "kubernetes-admin@10.0.0.1" in the kubeconfig is used by context "c" for cluster "x"`},
		{"context taken by another cluster", "contexts:\n- name: kubernetes-admin@10.0.0.1\n  context: {cluster: x, user: u}\n", "", `context "kubernetes-admin@10.0.0.1" in the kubeconfig is for cluster "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, err := parseKubeconfig([]byte(tt.base))
			if err != nil {
				t.Fatal(err)
			}
			n, err := chooseNames(base, me, endpointName(me))
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("chooseNames: %+v, %v; want an error with %q", n, err, tt.errHas)
				}
				return
			}
			if got := fmt.Sprintf("%s %s %s %v", n.Cluster, n.User, n.Context, n.Reused); err != nil || got != tt.want {
				t.Fatalf("chooseNames = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"https://A.example:6443", "https://a.example:6443/", true},
		{"https://a.example", "https://a.example:443", true},
		{"https://a.example:6443", "https://a.example:7443", false},
		{"https://a.example:6443", "https://b.example:6443", false},
	} {
		if sameServer(c.a, c.b) != c.same {
			t.Errorf("sameServer(%q, %q) = %v", c.a, c.b, !c.same)
		}
	}
}
