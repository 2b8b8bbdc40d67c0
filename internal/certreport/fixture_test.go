package certreport

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kplay/kplay/steps"
)

var update = flag.Bool("update", false, "rewrite golden files")

// now is the time of the fixture's check.
var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// certInfo is a present certificate as check_certs reports it.
func certInfo(host, name, path string, kind steps.CertKind, subject, issuer string, left time.Duration) steps.CertInfo {
	return steps.CertInfo{Host: host, Name: name, Path: path, Kind: kind, Subject: subject, Issuer: issuer, CA: "ca",
		NotBefore: now.Add(-365 * day), NotAfter: now.Add(left), Renewable: kind != steps.KindCA && kind != steps.KindKubelet,
		IsCA: kind == steps.KindCA, SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
}

// fixture is a check of three hosts within 30d: cp1 has an expiring, an
// expired and a missing certificate, cp2 is fine, cp3 could not be checked.
func fixture() *Report {
	cp1 := steps.CertList{
		certInfo("cp1", "apiserver", "/etc/kubernetes/pki/apiserver.crt", steps.KindPKI, "CN=kube-apiserver", "CN=kubernetes", 10*day),
		certInfo("cp1", "admin.conf", "/etc/kubernetes/admin.conf", steps.KindKubeconfig, "CN=kubernetes-admin,O=kubeadm:cluster-admins", "CN=kubernetes", -3*time.Hour),
		certInfo("cp1", "ca", "/etc/kubernetes/pki/ca.crt", steps.KindCA, "CN=kubernetes", "CN=kubernetes", 3000*day),
		{Host: "cp1", Name: "super-admin.conf", Path: "/etc/kubernetes/super-admin.conf", Kind: steps.KindKubeconfig, Missing: true, Renewable: true},
	}
	cp2 := steps.CertList{
		certInfo("cp2", "apiserver", "/etc/kubernetes/pki/apiserver.crt", steps.KindPKI, "CN=kube-apiserver \"quoted\"\nline", "CN=kubernetes", 300*day),
	}
	for _, l := range []steps.CertList{cp1, cp2} {
		l.SetAge(now)
		l.SortByExpiry()
	}
	return &Report{
		SchemaVersion: SchemaVersion, Within: "30d", CheckedAt: now, Expiring: 2, Expired: 1, ExitCode: 3, RunID: "20261130T120000Z-abcdef",
		Hosts: []Host{
			{Name: "cp1", Status: "ok", Certificates: NewCerts(cp1, now, 30*day)},
			{Name: "cp2", Status: "ok", Certificates: NewCerts(cp2, now, 30*day)},
			{Name: "cp3", Status: "unreachable", Error: "dial tcp 192.0.2.3:22: connect: no route to host", Certificates: []Cert{}},
		},
		Unchecked:  []string{"cp3"},
		Renew:      "kplay run playbooks/renew.yaml -i prod.yaml",
		Thresholds: "exit 3 when ...",
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/certreport -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\n%s\nwant:\n%s", name, got, want)
	}
}
