package steps

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/yamlx"
)

func TestBuiltinHasKubeadmSteps(t *testing.T) {
	t.Parallel()
	want := []string{"backup", "check_certs", "check_time", "fetch_admin_conf", "renew_certs", "renew_kubelet_client", "restart_apiserver", "shell", "verify_enddate"}
	if got := Builtin().Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v", got)
	}
}

func TestParamsDefaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ, params string
		want        Step
	}{
		{"check_time", "", &CheckTime{MaxSkew: 2 * time.Second, Samples: 3}},
		{"check_time", "max_skew: 500ms\nrequire_ntp: true\nsamples: 1", &CheckTime{MaxSkew: 500 * time.Millisecond, RequireNTP: true, Samples: 1}},
		{"check_certs", "", &CheckCerts{KubeDir: "/etc/kubernetes", KubeletPKI: "/var/lib/kubelet/pki", WarnWithin: 30 * 24 * time.Hour}},
		{"check_certs", "{warn_within: 0, fail_within: 7d, kubernetes_dir: '{{ home }}/k8s/'}", &CheckCerts{KubeDir: "/home/x/k8s", KubeletPKI: "/var/lib/kubelet/pki", FailWithin: 7 * 24 * time.Hour}},
		{"backup", "", &Backup{KubeDir: "/etc/kubernetes", Root: "/var/lib/kplay/backups", Keep: 10}},
		{"renew_certs", "", &RenewCerts{Kubeadm: "kubeadm", KubeDir: "/etc/kubernetes", BackupRoot: "/var/lib/kplay/backups", BackupKeep: 10}},
		{"renew_certs", "certs: [all]", &RenewCerts{Kubeadm: "kubeadm", KubeDir: "/etc/kubernetes", BackupRoot: "/var/lib/kplay/backups", BackupKeep: 10}},
		{"renew_certs", "certs: [apiserver, admin.conf]\nconfig: /etc/kubeadm.yaml\nonly_within: 30d\nkubeadm: /usr/local/bin/kubeadm",
			&RenewCerts{Certs: []string{"apiserver", "admin.conf"}, Config: "/etc/kubeadm.yaml", OnlyWithin: 30 * 24 * time.Hour, Kubeadm: "/usr/local/bin/kubeadm", KubeDir: "/etc/kubernetes", BackupRoot: "/var/lib/kplay/backups", BackupKeep: 10}},
		{"renew_certs", "kubernetes_dir: /srv/k\ncerts: [apiserver]", &RenewCerts{Certs: []string{"apiserver"}, Kubeadm: "kubeadm", KubeDir: "/srv/k", BackupRoot: "/var/lib/kplay/backups", BackupKeep: 10}},
		{"verify_enddate", "", &VerifyEnddate{MinDays: 300, CheckKey: true, KubeDir: "/etc/kubernetes"}},
		{"verify_enddate", "min_days: 0\ncheck_key: false\ncerts: [etcd-server]", &VerifyEnddate{Certs: []string{"etcd-server"}, KubeDir: "/etc/kubernetes"}},
		{"restart_apiserver", "", &RestartAPIServer{Method: "manifest", Restart: "needed", DownTimeout: 2 * time.Minute, UpTimeout: 3 * time.Minute, PollInterval: 250 * time.Millisecond,
			ServeCheck: "ssh", KubeDir: "/etc/kubernetes", ParkDir: "/etc/kubernetes/kplay-parked", Crictl: "crictl"}},
		{"restart_apiserver", "components: [kube-apiserver]\nmethod: crictl\naddress: '{{ addr }}'\nserve_check: host", &RestartAPIServer{Components: []string{"kube-apiserver"}, Method: "crictl", Restart: "needed", Address: "10.0.0.9",
			DownTimeout: 2 * time.Minute, UpTimeout: 3 * time.Minute, PollInterval: 250 * time.Millisecond, ServeCheck: "host", KubeDir: "/etc/kubernetes", ParkDir: "/etc/kubernetes/kplay-parked", Crictl: "crictl"}},
		{"fetch_admin_conf", "", &FetchAdminConf{Dest: "~/.kube/config", Merge: true, Verify: true, VerifyTimeout: time.Minute, Once: true, KubeDir: "/etc/kubernetes"}},
		{"fetch_admin_conf", "{dest: /tmp/kc, merge: false, verify: false, run_once: false, server: 'https://lb:6443'}", &FetchAdminConf{Dest: "/tmp/kc", VerifyTimeout: time.Minute, Server: "https://lb:6443", KubeDir: "/etc/kubernetes"}},
		{"fetch_admin_conf", "null", &FetchAdminConf{Dest: "~/.kube/config", Merge: true, Verify: true, VerifyTimeout: time.Minute, Once: true, KubeDir: "/etc/kubernetes"}},
	}
	for _, c := range cases {
		t.Run(c.typ+"/"+c.params, func(t *testing.T) {
			got, err := buildStep(c.typ, c.params)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParamsErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ, params string
		line        int
		key, msg    string
	}{
		{"check_time", "max_skew: 2s\nmax_skwe: 1s", 2, "check_time.max_skwe", "unknown key"},
		{"check_time", "max_skew: soon", 1, "check_time.max_skew", "bad duration"},
		{"check_time", "samples: 50", 1, "check_time.samples", "between 1 and 20"},
		{"check_certs", "warn_within: 30d\nfail_within: [1d]", 2, "check_certs.fail_within", "duration"},
		{"check_certs", "kubernetes_dir: etc/kubernetes", 1, "check_certs.kubernetes_dir", "absolute path"},
		{"check_certs", "kubelet_pki: '{{ nope }}'", 1, "check_certs.kubelet_pki", "undefined variable"},
		{"backup", "backup_dir: /etc/kubernetes/bak", 1, "backup.backup_dir", "inside kubernetes_dir"},
		{"backup", "dir: /x", 1, "backup.dir", "unknown key"},
		{"renew_certs", "certs: [apiserver, kubelet]", 1, "renew_certs.certs", `unknown certificate "kubelet"`},
		{"renew_certs", "certs: [all, apiserver]", 1, "renew_certs.certs", "cannot be combined"},
		{"renew_certs", "certs: [ca]", 1, "renew_certs.certs", `unknown certificate "ca"`},
		{"renew_certs", "certs: apiserver", 1, "renew_certs.certs", "must be a list"},
		{"renew_certs", "only_within: 30 days", 1, "renew_certs.only_within", "bad duration"},
		{"renew_certs", "config: kubeadm.yaml", 1, "renew_certs.config", "absolute path"},
		{"renew_certs", "kubernetes_dir: /srv/k", 1, "renew_certs.kubernetes_dir", "only under /etc/kubernetes"},
		{"renew_certs", "\nkubernetes_dir: /srv/k\ncerts: [apiserver]\nconfig: /c.yaml", 2, "renew_certs.kubernetes_dir", "cannot be combined with config"},
		{"verify_enddate", "min_days: -1", 1, "verify_enddate.min_days", "negative"},
		{"verify_enddate", "min_days: many", 1, "verify_enddate.min_days", ""},
		{"verify_enddate", "certs: [sa]", 1, "verify_enddate.certs", "unknown certificate"},
		{"restart_apiserver", "method: systemctl", 1, "restart_apiserver.method", "manifest or crictl"},
		{"restart_apiserver", "restart: sometimes", 1, "restart_apiserver.restart", "needed or always"},
		{"restart_apiserver", "components: [kube-proxy]", 1, "restart_apiserver.components", "unknown component"},
		{"restart_apiserver", "serve_check: maybe", 1, "restart_apiserver.serve_check", "ssh, controller, host or none"},
		{"restart_apiserver", "poll_interval: 0s", 1, "restart_apiserver.poll_interval", "more than 0"},
		{"restart_apiserver", "park_dir: /etc/kubernetes/manifests/x", 1, "restart_apiserver.park_dir", "inside the manifests"},
		{"restart_apiserver", "timeout: 1m", 1, "restart_apiserver.timeout", "unknown key"},
		{"fetch_admin_conf", "dest: ~bob/.kube/config", 1, "fetch_admin_conf.dest", "only ~/"},
		{"fetch_admin_conf", "dest: kube/config", 1, "fetch_admin_conf.dest", "absolute"},
		{"fetch_admin_conf", "server: http://x:6443", 1, "fetch_admin_conf.server", "https://"},
		{"fetch_admin_conf", "merge: perhaps", 1, "fetch_admin_conf.merge", ""},
	}
	for _, c := range cases {
		t.Run(c.typ+"/"+c.params, func(t *testing.T) {
			_, err := buildStep(c.typ, c.params)
			var ye *yamlx.Error
			if !errors.As(err, &ye) {
				t.Fatalf("want a *yamlx.Error, got %T %v", err, err)
			}
			if ye.Line != c.line || ye.Key != c.key || !strings.Contains(ye.Msg, c.msg) {
				t.Errorf("got line %d key %q msg %q; want line %d key %q msg ~%q", ye.Line, ye.Key, ye.Msg, c.line, c.key, c.msg)
			}
		})
	}
}

func TestExpiring(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	l := CertList{
		{Name: "b", NotAfter: now.Add(10 * day)},
		{Name: "a", NotAfter: now.Add(2 * day)},
		{Name: "gone", Missing: true},
		{Name: "old", NotAfter: now.Add(-day)},
		{Name: "far", NotAfter: now.Add(400 * day)},
	}
	cases := []struct {
		within time.Duration
		want   []string
	}{
		{0, []string{"old"}},
		{day, []string{"old"}},
		{2 * day, []string{"old"}},
		{2*day + time.Second, []string{"old", "a"}},
		{30 * day, []string{"old", "a", "b"}},
		{500 * day, []string{"old", "a", "b", "far"}},
	}
	for _, c := range cases {
		var got []string
		for _, x := range l.Expiring(now, c.within) {
			got = append(got, x.Name)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Expiring(%s) = %v, want %v", c.within, got, c.want)
		}
		if l.ExpiresWithin(now, c.within) != (len(c.want) > 0) {
			t.Errorf("ExpiresWithin(%s) disagrees", c.within)
		}
	}
	for _, c := range []struct {
		after time.Duration
		want  int
	}{{47 * time.Hour, 1}, {48 * time.Hour, 2}, {-time.Hour, -1}, {0, 0}, {23 * time.Hour, 0}} {
		if got := daysLeft(now.Add(c.after), now); got != c.want {
			t.Errorf("daysLeft(%s) = %d, want %d", c.after, got, c.want)
		}
	}
}

func TestCertTableGolden(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time { x, _ := time.Parse(time.RFC3339, s); return x }
	l := CertList{
		{Host: "cp2", Name: "apiserver", Kind: KindPKI, CA: "ca", NotAfter: at("2026-12-01T17:55:08Z"), DaysLeft: 1, Renewable: true},
		{Host: "cp1", Name: "ca", Kind: KindCA, NotAfter: at("2036-11-26T17:55:08Z"), DaysLeft: 3649, IsCA: true},
		{Host: "cp1", Name: "kubelet-client", Kind: KindKubelet, CA: "ca", NotAfter: at("2026-11-30T10:00:00Z"), DaysLeft: 0},
		{Host: "cp1", Name: "super-admin.conf", Kind: KindKubeconfig, CA: "ca", Missing: true},
		{Host: "cp1", Name: "apiserver", Kind: KindPKI, CA: "ca", NotAfter: at("2026-12-01T17:55:08Z"), DaysLeft: 1, Renewable: true},
		{Host: "cp1", Name: "etcd-server", Kind: KindPKI, CA: "etcd-ca", NotAfter: at("2027-11-29T17:55:08Z"), DaysLeft: 364, Renewable: true},
	}
	var b bytes.Buffer
	must(t, WriteCertTable(&b, l, true))
	b.WriteString("---\n")
	must(t, WriteCertTable(&b, l[1:3], false))
	golden(t, "cert_table.golden", b.Bytes())
}

func TestParseProbe(t *testing.T) {
	t.Parallel()
	m := "#kplay-0123456789abcdef"
	out := m + " now 1767225600\n" +
		m + " file pki /etc/kubernetes/pki/ca.crt\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" +
		m + " file kubeconfig /etc/kubernetes/admin with space.conf\n# kplay fake marker #kplay-0000 file pki /x\nusers: []\n" +
		m + " missing kubelet /var/lib/kubelet/pki/kubelet-client-current.pem\n" +
		m + " cakey yes /etc/kubernetes/pki/ca.key\n" +
		m + " cakey no /etc/kubernetes/pki/etcd/ca.key\n" +
		m + " keydigest " + emptySHA256 + " /etc/kubernetes/pki/apiserver.crt\n" +
		m + " keydigest abcd /etc/kubernetes/admin.conf\n" +
		m + " validity 48h0m0s\n"
	p, err := parseProbe([]byte(out), m)
	if err != nil {
		t.Fatal(err)
	}
	if p.hostNow.Unix() != 1767225600 || len(p.files) != 2 || len(p.missing) != 1 || p.validity != "48h0m0s" {
		t.Errorf("%+v", p)
	}
	if p.files[1].path != "/etc/kubernetes/admin with space.conf" || !strings.Contains(string(p.files[1].data), "#kplay-0000") {
		t.Errorf("file 1: %+v", p.files[1])
	}
	if !p.caKeys["/etc/kubernetes/pki/ca.key"] || p.caKeys["/etc/kubernetes/pki/etcd/ca.key"] {
		t.Errorf("ca keys %v", p.caKeys)
	}
	if d, ok := p.keyDigests["/etc/kubernetes/pki/apiserver.crt"]; !ok || d != "" {
		t.Errorf("empty digest must mean failure: %q", d)
	}
	if _, err := parseProbe([]byte("garbage"), m); err == nil {
		t.Error("want an error without a host time")
	}
}

func TestKubeconfigFilterDropsSecrets(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	in := `users:
- name: a
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZLUxJTkUtMQ==
      S0VZLUxJTkUtMg==
    token: c2VjcmV0
- name: b
  user:
    password: hunter2
    username: bob
`
	out, err := h.RunInput(context.Background(), "awk '"+kubeconfigFilter+"'", []byte(in))
	must(t, err)
	want := `users:
- name: a
  user:
    client-certificate-data: Q0VSVA==
- name: b
  user:
    username: bob
`
	if string(out) != want {
		t.Errorf("filtered:\n%s\nwant:\n%s", out, want)
	}
}
