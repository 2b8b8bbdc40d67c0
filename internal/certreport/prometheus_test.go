package certreport

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestPrometheusGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WritePrometheus(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "check.prom.golden", b.Bytes())
}

// sampleLine is one sample of the exposition format, with labels.
var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9]+$`)

// TestPrometheusSyntaxAndValues: every line is a comment or a well-formed
// sample, and the samples say what the fixture holds.
func TestPrometheusSyntaxAndValues(t *testing.T) {
	var b bytes.Buffer
	if err := WritePrometheus(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(l, "# HELP ") && !strings.HasPrefix(l, "# TYPE ") && !sampleLine.MatchString(l) {
			t.Errorf("malformed line %q", l)
		}
	}
	for _, want := range []string{
		`x509_cert_expired{certificate="admin.conf",embedded_kind="user",filename="admin.conf",filepath="/etc/kubernetes/admin.conf",host="cp1",issuer_CN="kubernetes",kind="kubeconfig",subject_CN="kubernetes-admin"} 1`,
		`x509_cert_not_after{certificate="apiserver",filename="apiserver.crt",filepath="/etc/kubernetes/pki/apiserver.crt",host="cp1",issuer_CN="kubernetes",kind="pki",subject_CN="kube-apiserver"} 1796904000`,
		`kplay_check_host_up{host="cp3"} 0`,
		`kplay_check_host_up{host="cp1"} 1`,
		`kplay_check_unchecked_hosts 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, "super-admin.conf") {
		t.Error("a missing certificate has no dates to export")
	}
	if n := strings.Count(out, "x509_cert_not_after{"); n != 4 {
		t.Errorf("%d x509_cert_not_after samples, want 4 (the present certificates)", n)
	}
}

func TestCommonName(t *testing.T) {
	for dn, want := range map[string]string{
		"CN=kube-apiserver":                    "kube-apiserver",
		"CN=system:node:cp1,O=system:nodes":    "system:node:cp1",
		"O=system:masters,CN=kubernetes-admin": "kubernetes-admin",
		`CN=a\,b,O=x`:                          "a,b",
		"O=only":                               "",
		"":                                     "",
	} {
		if got := commonName(dn); got != want {
			t.Errorf("commonName(%q) = %q, want %q", dn, got, want)
		}
	}
}
