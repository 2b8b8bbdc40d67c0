package steps

import (
	"encoding/base64"
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
