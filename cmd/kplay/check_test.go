package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/certreport"
	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/steps"
)

func TestCheckExitCode(t *testing.T) {
	for _, c := range []struct {
		name        string
		interrupted bool
		unchecked   int
		expiring    int
		want        int
	}{
		{"all checked, nothing expiring", false, 0, 0, exitOK},
		{"all checked, expiring", false, 0, 4, exitExpiring},
		{"unreachable host, nothing expiring elsewhere", false, 1, 0, exitFailed},
		{"unreachable host and expiring elsewhere", false, 1, 4, exitExpiring},
		{"every host unreachable", false, 3, 0, exitFailed},
		{"interrupted", true, 0, 0, exitInterrupt},
		{"interrupted with expiring", true, 0, 4, exitInterrupt},
		{"interrupted with unchecked hosts", true, 2, 0, exitInterrupt},
	} {
		if got := checkExitCode(c.interrupted, c.unchecked, c.expiring); got != c.want {
			t.Errorf("%s: exit %d, want %d", c.name, got, c.want)
		}
	}
}

// checkNow is the check time of the verdict tests.
func checkNow() time.Time { return time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) }

// cert is a present certificate on host expiring at checkNow+left, aged as of checkNow.
func cert(host, name string, kind steps.CertKind, left time.Duration) steps.CertInfo {
	l := steps.CertList{{Host: host, Name: name, Kind: kind, CA: "ca", NotAfter: checkNow().Add(left)}}
	l.SetAge(checkNow())
	return l[0]
}

// fakeReport is a finished check run: per host, the certificates check_certs
// reported (nil: the host reported none, so it was not checked).
func fakeReport(hosts map[string]steps.CertList, order ...string) *runner.Report {
	rep := &runner.Report{RunID: "run-1"}
	for _, name := range order {
		h := &runner.HostReport{Name: name, Status: runner.StatusOK}
		if l := hosts[name]; l != nil {
			h.Steps = []*runner.StepReport{{Name: "check time"}, {Name: "check certs", Data: l}}
		} else {
			h.Status = runner.StatusUnreachable
			h.Error = "dial tcp 192.0.2.3:22: connect: no route to host"
		}
		rep.Hosts = append(rep.Hosts, h)
	}
	return rep
}

func TestCheckVerdict(t *testing.T) {
	const day = 24 * time.Hour
	const order = "(it renews every control-plane host first, then restarts the control plane host by host)"
	tests := []struct {
		name  string
		hosts map[string]steps.CertList
		order []string
		inv   string
		code  int
		want  []string // every line, in order
	}{
		{
			name:  "nothing expiring",
			hosts: map[string]steps.CertList{"cp1": {cert("cp1", "apiserver", steps.KindPKI, 200*day)}},
			order: []string{"cp1"}, inv: "prod.yaml", code: exitOK,
			want: []string{"OK: no certificate expires within 30d"},
		},
		{
			name: "unreachable host, nothing expiring",
			hosts: map[string]steps.CertList{
				"cp1": {cert("cp1", "apiserver", steps.KindPKI, 200*day)},
				"cp2": {cert("cp2", "apiserver", steps.KindPKI, 200*day)},
			},
			order: []string{"cp1", "cp2", "cp3"}, inv: "prod.yaml", code: exitFailed,
			want: []string{"FAIL: 1 host(s) could not be checked: cp3; on the 2 checked host(s) no certificate expires within 30d"},
		},
		{
			name:  "no host reachable",
			hosts: map[string]steps.CertList{},
			order: []string{"cp1", "cp2"}, inv: "prod.yaml", code: exitFailed,
			want: []string{"FAIL: 2 host(s) could not be checked: cp1, cp2"},
		},
		{
			name:  "expiring, not expired: today's line",
			hosts: map[string]steps.CertList{"cp1": {cert("cp1", "apiserver", steps.KindPKI, 2*day), cert("cp1", "ca", steps.KindCA, 3000*day)}},
			order: []string{"cp1"}, inv: "prod.yaml", code: exitExpiring,
			want: []string{"FAIL: 1 certificate(s) expire within 30d; soonest: apiserver on cp1, 2026-12-02T12:00:00Z (renew: kplay run playbooks/renew.yaml -i prod.yaml)"},
		},
		{
			name: "expiring and an unreachable host: exit 3, both named",
			hosts: map[string]steps.CertList{
				"cp1": {cert("cp1", "apiserver", steps.KindPKI, 2*day)},
				"cp2": {cert("cp2", "etcd-server", steps.KindPKI, 10*day)},
			},
			order: []string{"cp1", "cp2", "cp3"}, inv: "inv/prod.yaml", code: exitExpiring,
			want: []string{
				"FAIL: 2 certificate(s) expire within 30d; soonest: apiserver on cp1, 2026-12-02T12:00:00Z (renew: kplay run playbooks/renew.yaml -i inv/prod.yaml)",
				"NOT CHECKED: 1 host(s): cp3; the count above covers the other 2 host(s) only",
			},
		},
		{
			name: "control plane and kubelet expired",
			hosts: map[string]steps.CertList{
				"cp1": {cert("cp1", "apiserver", steps.KindPKI, -3*time.Hour), cert("cp1", "kubelet-client", steps.KindKubelet, -12*day), cert("cp1", "etcd-peer", steps.KindPKI, 5*day)},
				"cp2": {cert("cp2", "apiserver", steps.KindPKI, -2*time.Hour)},
			},
			order: []string{"cp1", "cp2"}, inv: "my inventory.yaml", code: exitExpiring,
			want: []string{
				"EXPIRED: 2 certificate(s) have already expired (the first: apiserver on cp1, EXPIRED 3h ago); new TLS connections that use them fail (x509: certificate has expired).",
				"To recover the cluster, run: kplay run playbooks/renew.yaml -i 'my inventory.yaml'",
				"  " + order,
				"EXPIRED: kubelet's client certificate on cp1 (EXPIRED 12d ago): kubelet's own rotation failed; the same command recovers it (its renew_kubelet_client step).",
				"FAIL: 4 certificate(s) expire within 30d, 3 of them already expired; soonest: kubelet-client on cp1, 2026-11-18T12:00:00Z (renew: kplay run playbooks/renew.yaml -i 'my inventory.yaml')",
			},
		},
		{
			name: "only kubelet expired, one host unreachable",
			hosts: map[string]steps.CertList{
				"cp1": {cert("cp1", "kubelet-client", steps.KindKubelet, -90*time.Minute), cert("cp1", "apiserver", steps.KindPKI, 300*day)},
				"cp2": {cert("cp2", "kubelet-client", steps.KindKubelet, -30*time.Minute)},
			},
			order: []string{"cp1", "cp2", "cp3"}, inv: "prod.yaml", code: exitExpiring,
			want: []string{
				"EXPIRED: kubelet's client certificate on cp1, cp2 (the first EXPIRED 1h ago): kubelet's own rotation failed. The same command that renews the control plane recovers it (its renew_kubelet_client step): kplay run playbooks/renew.yaml -i prod.yaml",
				"  " + order,
				"FAIL: 2 certificate(s) expire within 30d, 2 of them already expired; soonest: kubelet-client on cp1, 2026-11-30T10:30:00Z (renew: kplay run playbooks/renew.yaml -i prod.yaml)",
				"NOT CHECKED: 1 host(s): cp3; the count above covers the other 2 host(s) only",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, expiring := summarise(fakeReport(tt.hosts, tt.order...), checkNow(), 30*24*time.Hour, tt.inv)
			if out.ExitCode != tt.code {
				t.Errorf("exit %d, want %d", out.ExitCode, tt.code)
			}
			got := checkVerdict(out, expiring)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("verdict:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	if got := checkVerdict(certreport.Report{ExitCode: exitInterrupt}, nil); len(got) != 1 || !strings.HasPrefix(got[0], "INTERRUPTED") {
		t.Errorf("interrupted: %q", got)
	}
}

// TestSummariseJSON: an unreachable host and an expiring certificate give
// exit 3 with the host named, the counts and the renew command; ages are
// recomputed as of the check, without touching the run's report.
func TestSummariseJSON(t *testing.T) {
	stale := steps.CertList{{Name: "apiserver", Kind: steps.KindPKI, NotAfter: checkNow().Add(-25 * time.Hour)},
		{Name: "super-admin.conf", Kind: steps.KindKubeconfig, Missing: true}}
	stale.SetAge(checkNow().Add(-48 * time.Hour)) // as check_certs saw it, long before
	rep := fakeReport(map[string]steps.CertList{"cp1": stale}, "cp1", "cp2")
	out, all, _ := summarise(rep, checkNow(), 30*24*time.Hour, "prod.yaml")
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		SchemaVersion int      `json:"schema_version"`
		Expiring      int      `json:"expiring"`
		Expired       int      `json:"expired"`
		ExitCode      int      `json:"exit_code"`
		Unchecked     []string `json:"unchecked"`
		Renew         string   `json:"renew"`
		Hosts         []struct {
			Name         string `json:"name"`
			Status       string `json:"status"`
			Certificates []struct {
				Host              string  `json:"host"`
				State             string  `json:"state"`
				DaysLeft          *int    `json:"days_left"`
				NotAfter          *string `json:"not_after"`
				Expired           bool    `json:"expired"`
				ExpiredAgoSeconds int64   `json:"expired_ago_seconds"`
			} `json:"certificates"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion != certreport.SchemaVersion {
		t.Errorf("schema_version %d, want %d", doc.SchemaVersion, certreport.SchemaVersion)
	}
	if doc.ExitCode != exitExpiring || doc.Expiring != 1 || doc.Expired != 1 || strings.Join(doc.Unchecked, ",") != "cp2" ||
		doc.Renew != "kplay run playbooks/renew.yaml -i prod.yaml" {
		t.Errorf("summary %s", b)
	}
	if len(doc.Hosts) != 2 || len(doc.Hosts[0].Certificates) != 2 || doc.Hosts[1].Status != "unreachable" {
		t.Fatalf("hosts %s", b)
	}
	if c := doc.Hosts[0].Certificates[0]; c.Host != "cp1" || !c.Expired || c.ExpiredAgoSeconds != 25*3600 || c.DaysLeft == nil || *c.DaysLeft != -2 ||
		c.State != "expired" {
		t.Errorf("certificate not aged as of the check: %+v", c)
	}
	// A missing certificate has no age: not "0 days left".
	if c := doc.Hosts[0].Certificates[1]; c.State != "missing" || c.DaysLeft != nil || c.NotAfter != nil {
		t.Errorf("missing certificate: %+v", c)
	}
	if len(all) != 2 || all[0].DaysLeftText() != "EXPIRED 25h ago" {
		t.Errorf("all = %+v", all)
	}
	if stale[0].Expired || stale[0].DaysLeft != 0 {
		t.Errorf("the run's report was changed: %+v", stale[0])
	}
	// Nothing expiring: no renew command, exit 1 for the unreachable host.
	rep = fakeReport(map[string]steps.CertList{"cp1": {cert("cp1", "apiserver", steps.KindPKI, 300*24*time.Hour)}}, "cp1", "cp2")
	if out, _, _ := summarise(rep, checkNow(), 30*24*time.Hour, "prod.yaml"); out.ExitCode != exitFailed || out.Renew != "" || out.Expiring != 0 {
		t.Errorf("unreachable only: %+v", out)
	}
}
