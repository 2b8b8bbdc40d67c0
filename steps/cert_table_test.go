package steps

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestExpiredAgo(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	for _, c := range []struct {
		ago  time.Duration
		want string
	}{
		{0, "<1m ago"},
		{59 * time.Second, "<1m ago"},
		{time.Minute, "1m ago"},
		{59*time.Minute + 59*time.Second, "59m ago"},
		{time.Hour, "1h ago"},
		{3*time.Hour + 59*time.Minute, "3h ago"},
		{47*time.Hour + 59*time.Minute, "47h ago"},
		{2 * day, "2d ago"},
		{3*day - time.Second, "2d ago"},
		{12 * day, "12d ago"},
		{400 * day, "400d ago"},
	} {
		if got := expiredAgo(c.ago); got != c.want {
			t.Errorf("expiredAgo(%s) = %q, want %q", c.ago, got, c.want)
		}
	}
}

func TestSetAgeAndDaysLeftText(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name     string
		in       CertInfo
		days     int
		expired  bool
		agoS     int64
		wantCell string
	}{
		{"far", CertInfo{NotAfter: now.Add(365 * 24 * time.Hour)}, 365, false, 0, "365"},
		{"today", CertInfo{NotAfter: now.Add(5 * time.Hour)}, 0, false, 0, "0"},
		{"one second left", CertInfo{NotAfter: now.Add(time.Second)}, 0, false, 0, "0"},
		{"expires now", CertInfo{NotAfter: now}, 0, true, 0, "EXPIRED <1m ago"},
		{"minutes", CertInfo{NotAfter: now.Add(-59*time.Minute - 59*time.Second)}, -1, true, 3599, "EXPIRED 59m ago"},
		{"hours", CertInfo{NotAfter: now.Add(-3 * time.Hour)}, -1, true, 3 * 3600, "EXPIRED 3h ago"},
		{"47h", CertInfo{NotAfter: now.Add(-47 * time.Hour)}, -2, true, 47 * 3600, "EXPIRED 47h ago"},
		{"days", CertInfo{NotAfter: now.Add(-12 * 24 * time.Hour)}, -12, true, 12 * 24 * 3600, "EXPIRED 12d ago"},
		{"missing", CertInfo{Missing: true}, 0, false, 0, "-"},
		// Left alone: a missing certificate has no date to age.
		{"missing keeps fields", CertInfo{Missing: true, DaysLeft: 7}, 7, false, 0, "-"},
	} {
		got := c.in
		got.setAge(now)
		if got.DaysLeft != c.days || got.Expired != c.expired || got.ExpiredAgoSeconds != c.agoS || got.DaysLeftText() != c.wantCell {
			t.Errorf("%s: days %d expired %v ago %ds cell %q; want %d %v %ds %q",
				c.name, got.DaysLeft, got.Expired, got.ExpiredAgoSeconds, got.DaysLeftText(), c.days, c.expired, c.agoS, c.wantCell)
		}
	}
	// A CertInfo with a negative day count but no recorded age still reads as expired.
	if got := (CertInfo{DaysLeft: -3}).DaysLeftText(); got != "EXPIRED" {
		t.Errorf("negative days without age: %q, want EXPIRED", got)
	}
	// Recomputing an expired certificate as of a time before its expiry clears the age.
	l := CertList{{NotAfter: now.Add(-time.Hour)}}
	l.SetAge(now)
	l.SetAge(now.Add(-2 * time.Hour))
	if l[0].Expired || l[0].ExpiredAgoSeconds != 0 || l[0].DaysLeft != 0 {
		t.Errorf("SetAge before expiry: %+v", l[0])
	}
}

// TestCertInfoJSONExpiredFields: the expiry fields are additive and omitted
// for certificates that have not expired.
func TestCertInfoJSONExpiredFields(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   CertInfo
		want []string
		not  []string
	}{
		{CertInfo{Name: "a", NotAfter: now.Add(-3 * time.Hour)}, []string{`"expired":true`, `"expired_ago_seconds":10800`, `"days_left":-1`}, nil},
		{CertInfo{Name: "b", NotAfter: now.Add(72 * time.Hour)}, []string{`"days_left":3`}, []string{"expired"}},
		{CertInfo{Name: "c", Missing: true}, []string{`"missing":true`, `"days_left":null`}, []string{"expired", `"days_left":0`}},
		{CertInfo{Name: "d", Subject: `CN="days_left":0,`, Missing: true}, []string{`"subject":"CN=\"days_left\":0,"`, `"days_left":null`}, nil},
	} {
		ci := c.in
		ci.setAge(now)
		b, err := json.Marshal(ci)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !bytes.Contains(b, []byte(w)) {
				t.Errorf("%s: JSON %s lacks %s", ci.Name, b, w)
			}
		}
		for _, n := range c.not {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s: JSON %s has %s", ci.Name, b, n)
			}
		}
	}
}

// TestCertTableExpiredGolden: expired certificates read EXPIRED with their
// age, missing ones "missing", never a negative or zero day count.
func TestCertTableExpiredGolden(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	l := CertList{
		{Host: "cp1", Name: "etcd-server", Kind: KindPKI, CA: "etcd-ca", NotAfter: now.Add(20 * 24 * time.Hour), Renewable: true},
		{Host: "cp2", Name: "apiserver", Kind: KindPKI, CA: "ca", NotAfter: now.Add(-3*time.Hour - 10*time.Minute), Renewable: true},
		{Host: "cp1", Name: "kubelet-client", Kind: KindKubelet, CA: "ca", NotAfter: now.Add(-12*24*time.Hour - 5*time.Hour)},
		{Host: "cp1", Name: "admin.conf", Kind: KindKubeconfig, CA: "ca", NotAfter: now.Add(-42 * time.Minute), Renewable: true},
		{Host: "cp2", Name: "front-proxy-client", Kind: KindPKI, CA: "front-proxy-ca", NotAfter: now.Add(5 * time.Hour), Renewable: true},
		{Host: "cp1", Name: "super-admin.conf", Kind: KindKubeconfig, CA: "ca", Missing: true, Renewable: true},
		{Host: "cp1", Name: "ca", Kind: KindCA, NotAfter: now.Add(9 * 365 * 24 * time.Hour), IsCA: true},
	}
	l.SetAge(now)
	var b bytes.Buffer
	must(t, WriteCertTable(&b, l, true))
	b.WriteString("---\n")
	must(t, WriteCertTable(&b, l[2:6], false))
	golden(t, "cert_table_expired.golden", b.Bytes())
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, "super-admin.conf") && (!strings.Contains(line, "missing") || strings.Contains(line, " 0 ")) {
			t.Errorf("missing certificate row %q: want \"missing\" and no day count", line)
		}
	}
	if lines := certTableLines(l); len(lines) != len(l)+1 || !strings.Contains(lines[1], "EXPIRED 12d ago") {
		t.Errorf("certTableLines = %q", lines)
	}
}
