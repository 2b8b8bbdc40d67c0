package sshconfig

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLoadRejectsBadValues(t *testing.T) {
	for _, tt := range []struct{ conf, want string }{
		{"Host a\n  Port http\n", ":2: Port: \"http\" is not a port"},
		{"Host a\n  User x\n  ConnectTimeout soon\n", ":3: ConnectTimeout:"},
		{"Host a\n  StrictHostKeyChecking maybe\n", ":2: StrictHostKeyChecking:"},
		{"Host a\n  ProxyJump b1, b2\n", ":2: ProxyJump:"},
		{"Host a\n  ServerAliveInterval 10s\n", ":2: ServerAliveInterval: \"10s\" is not a whole number"},
		{"Host a\n  User x\n  ServerAliveCountMax -1\n", ":3: ServerAliveCountMax:"},
	} {
		p := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(p, []byte(tt.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), p+tt.want) {
			t.Errorf("%q: %v, want %q", tt.conf, err, p+tt.want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a named file that does not exist was accepted")
	}
}

func TestLookup(t *testing.T) {
	home, _ := os.UserHomeDir()
	p := filepath.Join(t.TempDir(), "config")
	conf := "Host web*\n  HostName %h.example\n  Port 2222\n  IdentityFile ~/.ssh/a\n  CertificateFile ~/.ssh/a-cert.pub\n" +
		"Host db\n  ServerAliveInterval 0\n  ServerAliveCountMax 0\n" +
		"Host *\n  ServerAliveInterval 15\n  ServerAliveCountMax 8\n  User ops\n  IdentityFile /k/b\n  ConnectTimeout 7\n  ProxyJump none\n  UserKnownHostsFile ~/kh1 /kh2\n  IdentitiesOnly yes\n"
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		alias string
		want  Host
	}{
		{"web1", Host{HostName: "web1.example", User: "ops", Port: 2222, IdentityFiles: []string{home + "/.ssh/a", "/k/b"}, IdentitiesOnly: true, ProxyJump: "none",
			KnownHostsFiles: []string{home + "/kh1", "/kh2"}, CertificateFiles: []string{home + "/.ssh/a-cert.pub"}, ConnectTimeout: 7 * time.Second,
			ServerAliveInterval: 15 * time.Second, ServerAliveCountMax: 8}},
		{"db", Host{User: "ops", IdentityFiles: []string{"/k/b"}, IdentitiesOnly: true, ProxyJump: "none", KnownHostsFiles: []string{home + "/kh1", "/kh2"}, ConnectTimeout: 7 * time.Second}},
	} {
		got := f.Lookup(Query{Host: tt.alias, DefaultUser: "root"})
		if g, w := fmtHost(got), fmtHost(tt.want); g != w {
			t.Errorf("%s:\n got %s\nwant %s", tt.alias, g, w)
		}
	}
}

// fmtHost prints h for comparison.
func fmtHost(h Host) string {
	return strings.Join([]string{h.HostName, h.User, time.Duration(h.Port).String(), strings.Join(h.IdentityFiles, ","),
		map[bool]string{true: "only", false: "any"}[h.IdentitiesOnly], h.ProxyJump, strings.Join(h.KnownHostsFiles, ","),
		strings.Join(h.CertificateFiles, ","), h.ConnectTimeout.String(), h.ServerAliveInterval.String(), strconv.Itoa(h.ServerAliveCountMax)}, " ")
}
