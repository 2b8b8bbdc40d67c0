package steps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseEpoch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"1767225600.123456789", time.Unix(1767225600, 123456789), false},
		{"1767225600.5", time.Unix(1767225600, 500000000), false},
		{"1767225600.N", time.Unix(1767225600, 0), false},
		{"1767225600", time.Unix(1767225600, 0), false},
		{"1767225600.1234567891", time.Unix(1767225600, 123456789), false},
		{"Thu Jan  1", time.Time{}, true},
		{"17.x", time.Time{}, true},
	}
	for _, c := range cases {
		got, err := parseEpoch(c.in)
		if (err != nil) != c.err || !got.Equal(c.want) {
			t.Errorf("parseEpoch(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestParseNTP(t *testing.T) {
	t.Parallel()
	cases := []struct{ out, source, state string }{
		{"source timedatectl\nTimezone=UTC\nNTP=yes\nNTPSynchronized=yes\n", "timedatectl", NTPSynced},
		{"source timedatectl\nNTP=no\nNTPSynchronized=no\n", "timedatectl", NTPUnsynced},
		{"source timedatectl\nTimezone=UTC\n", "timedatectl", NTPUnknown},
		{"source chronyc\nReference ID    : A29FC87B (time.cloudflare.com)\nStratum         : 4\nLeap status     : Normal\n", "chronyc", NTPSynced},
		{"source chronyc\nReference ID    : 00000000 ()\nLeap status     : Not synchronised\n", "chronyc", NTPUnsynced},
		{"source ntpq\n     remote           refid      st t when poll reach   delay   offset  jitter\n==============\n*162.159.200.1   10.4.1.175       3 u   36   64  377    1.1   -0.2   0.1\n", "ntpq", NTPSynced},
		{"source ntpq\n     remote           refid      st t when poll reach   delay   offset  jitter\n 162.159.200.1   .INIT.          16 u    -   64    0    0.0    0.0   0.0\n", "ntpq", NTPUnsynced},
		{"source none\n", "", NTPUnknown},
		{"", "", NTPUnknown},
	}
	for _, c := range cases {
		src, st := parseNTP(c.out)
		if src != c.source || st != c.state {
			t.Errorf("parseNTP(%q) = %q %q, want %q %q", c.out, src, st, c.source, c.state)
		}
	}
}

func TestCheckTime(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	ctx := testCtx(t)
	tg := h.target()
	r, err := newStep(t, "check_time", "").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	info := r.Data.(TimeInfo)
	if info.Skew > 0.5 || info.Skew < -0.5 || info.Host != "cp1" {
		t.Errorf("local skew %+v", info)
	}
	if r.Changed {
		t.Error("check_time changed something")
	}

	// The controller's clock runs 5s ahead: the host is 5s behind.
	tg.Now = func() time.Time { return time.Now().Add(5 * time.Second) }
	_, err = newStep(t, "check_time", "").Apply(ctx, tg)
	if err == nil || !strings.Contains(err.Error(), "host clock is off by -4.") && !strings.Contains(err.Error(), "host clock is off by -5.") || !strings.Contains(err.Error(), "max_skew 2s") {
		t.Errorf("skewed: %v", err)
	}
	if _, err := newStep(t, "check_time", "max_skew: 10s").Apply(ctx, tg); err != nil {
		t.Errorf("max_skew 10s: %v", err)
	}
	tg.Now = time.Now

	// NTP tools, first one that answers wins; require_ntp fails unless synchronised.
	tool := func(name, script string) {
		must(t, os.WriteFile(filepath.Join(h.bin, name), []byte("#!/bin/sh\n"+script), 0o755))
	}
	tool("timedatectl", "exit 1\n") // no systemd: falls through
	tool("chronyc", "echo 'Leap status     : Not synchronised'\n")
	r, err = newStep(t, "check_time", "require_ntp: true").Apply(ctx, tg)
	if err == nil || !strings.Contains(err.Error(), "require_ntp: NTP is unsynchronized (chronyc)") {
		t.Errorf("chronyc unsynced: %v", err)
	}
	tool("timedatectl", "echo NTP=yes; echo NTPSynchronized=yes\n")
	r, err = newStep(t, "check_time", "require_ntp: true").Apply(ctx, tg)
	if err != nil || r.Data.(TimeInfo).NTPSource != "timedatectl" || !strings.Contains(r.Message, "NTP synchronized (timedatectl)") {
		t.Errorf("timedatectl synced: %+v %v", r, err)
	}
	// Plan is the same read-only check.
	p, err := newStep(t, "check_time", "").Plan(ctx, tg)
	if err != nil || p.WouldChange {
		t.Errorf("plan: %+v %v", p, err)
	}
}

// TestPlansOnlyRead runs every kubeadm step's Plan on a real PKI and checks
// that nothing on the host changed.
func TestPlansOnlyRead(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	tg := h.target()
	ctx := testCtx(t)
	before := snapshot(t, h)
	for _, typ := range []string{"check_time", "check_certs", "backup", "renew_certs", "verify_enddate", "restart_apiserver", "fetch_admin_conf"} {
		params := ""
		if typ == "fetch_admin_conf" {
			params = "dest: " + filepath.Join(t.TempDir(), "kc")
		}
		p, err := newStep(t, typ, params).Plan(ctx, tg)
		if err != nil {
			t.Errorf("%s plan: %v", typ, err)
			continue
		}
		if p.Summary == "" {
			t.Errorf("%s: empty plan summary", typ)
		}
		t.Logf("%s: %s", typ, p.Summary)
	}
	if d := diffSnapshots(before, snapshot(t, h)); len(d) > 0 {
		t.Errorf("plans changed the host:\n%s", strings.Join(d, "\n"))
	}
	// renew_certs' plan names the backup the backup step would take.
	p, _ := newStep(t, "renew_certs", "").Plan(ctx, tg)
	if !strings.Contains(strings.Join(p.Details, "\n"), "backup: /var/lib/kplay/backups/"+tg.RunID+" (from the backup step)") {
		t.Errorf("renew plan details: %v", p.Details)
	}
	h.assertNoSecrets(t, func(cmd string) bool { return strings.Contains(cmd, "admin.conf") && strings.HasPrefix(cmd, "cat ") })
}
