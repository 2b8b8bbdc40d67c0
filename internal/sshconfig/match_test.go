package sshconfig

import (
	"crypto/sha1"
	"encoding/hex"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// load writes conf to a config file and loads it.
func load(t *testing.T, conf string) (*File, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return f, p
}

// TestMatch: Match blocks apply to exactly the hosts OpenSSH applies them
// to: host (the HostName so far), originalhost, user (the user so far),
// localuser, all, negation, comma lists with negated entries, several
// criteria together; Host lines with negated patterns.
func TestMatch(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, conf string
		q          Query
		wantPort   int
	}{
		{"match host, by alias", "Match host web*\n  Port 2001\n", Query{Host: "web1"}, 2001},
		{"match host, other host", "Match host web*\n  Port 2001\n", Query{Host: "db1"}, 0},
		{"match host sees HostName set before", "Host w\n  HostName web9.example\nMatch host web*.example\n  Port 2002\n", Query{Host: "w"}, 2002},
		{"match host sees the caller's HostName", "Match host 10.0.0.*\n  Port 2003\n", Query{Host: "cp1", HostName: "10.0.0.5"}, 2003},
		{"match originalhost ignores HostName", "Host w\n  HostName web9\nMatch originalhost web*\n  Port 2004\n", Query{Host: "w"}, 0},
		{"match originalhost", "Match originalhost w\n  Port 2004\n", Query{Host: "w"}, 2004},
		{"comma list", "Match host a,b,c\n  Port 2005\n", Query{Host: "b"}, 2005},
		{"comma list, negated entry", "Match host *,!b\n  Port 2006\n", Query{Host: "b"}, 0},
		{"comma list, negated entry, other host", "Match host *,!b\n  Port 2006\n", Query{Host: "a"}, 2006},
		{"negated criterion", "Match !host b\n  Port 2007\n", Query{Host: "a"}, 2007},
		{"negated criterion, excluded", "Match !host b\n  Port 2007\n", Query{Host: "b"}, 0},
		{"criteria are anded", "Match host a user ops\n  Port 2008\n", Query{Host: "a", DefaultUser: "root"}, 0},
		{"criteria are anded, both hold", "Match host a user ops\n  Port 2008\n", Query{Host: "a", User: "ops"}, 2008},
		{"user set before", "Host a\n  User ops\nMatch user ops\n  Port 2009\n", Query{Host: "a", DefaultUser: "root"}, 2009},
		{"caller's user beats the file's", "Host a\n  User ops\nMatch user ops\n  Port 2009\n", Query{Host: "a", User: "root"}, 0},
		{"default user", "Match user root\n  Port 2010\n", Query{Host: "a", DefaultUser: "root"}, 2010},
		{"localuser", "Match localuser " + me.Username + "\n  Port 2011\n", Query{Host: "a"}, 2011},
		{"localuser, someone else", "Match localuser nobody-" + me.Username + "\n  Port 2011\n", Query{Host: "a"}, 0},
		{"match all", "Match all\n  Port 2012\n", Query{Host: "a"}, 2012},
		{"first value wins across blocks", "Match all\n  Port 2013\nHost a\n  Port 2014\n", Query{Host: "a"}, 2013},
		{"block ends at the next Host", "Match host a\nHost b\n  Port 2015\n", Query{Host: "a"}, 0},
		{"host negated pattern", "Host * !a\n  Port 2016\n", Query{Host: "a"}, 0},
		{"host negated pattern, other", "Host * !a\n  Port 2016\n", Query{Host: "b"}, 2016},
		{"? is exactly one character", "Host web?\n  Port 2017\n", Query{Host: "web"}, 0},
		{"? matches one character", "Host web?\n  Port 2017\n", Query{Host: "web1"}, 2017},
		{"match host is case-insensitive", "Match host WEB1\n  Port 2018\n", Query{Host: "web1"}, 2018},
		{"key=value and quotes", "Host=\"a\"\n  Port=2019\n", Query{Host: "a"}, 2019},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := load(t, tt.conf)
			if got := f.Lookup(tt.q).Port; got != tt.wantPort {
				t.Errorf("%q for %+v: Port %d, want %d", tt.conf, tt.q, got, tt.wantPort)
			}
		})
	}
}

// TestLoadRefuses: what kplay cannot evaluate or does not support is an
// error naming the file, the line and the key or criterion.
func TestLoadRefuses(t *testing.T) {
	for _, tt := range []struct{ conf, want string }{
		{"Host a\nMatch exec \"test -f /x\"\n  User ops\n", `:2: Match: criterion "exec" is not supported`},
		{"Match canonical host a\n", `:1: Match: criterion "canonical" is not supported`},
		{"Match final\n", `:1: Match: criterion "final" is not supported`},
		{"Match localnetwork 10.0.0.0/8\n", `:1: Match: criterion "localnetwork" is not supported`},
		{"Match tagged x\n", `:1: Match: criterion "tagged" is not supported`},
		{"Match host a bogus b\n", `:1: Match: criterion "bogus" is not supported`},
		{"Match host\n", `:1: Match: criterion "host" needs a pattern list`},
		{"Match all host a\n", `:1: Match: 'all' cannot be combined`},
		{"Host a\n  IdentityFile ~/.ssh/%h-%x\n", `:2: IdentityFile: "~/.ssh/%h-%x": unknown token %x`},
		{"Host a\n  CertificateFile /c/%T\n", `:2: CertificateFile: "/c/%T": unknown token %T`},
		{"Host a\n\n  UserKnownHostsFile /k/ok /k/%f\n", `:3: UserKnownHostsFile: "/k/%f": unknown token %f`},
		{"Host a\n  IdentityFile /k/%\n", `:2: IdentityFile: "/k/%" ends with a lone %`},
		{"Host a\n  IdentityFile /k/${KPLAY_TEST_SURELY_UNSET}\n", `:2: IdentityFile: "/k/${KPLAY_TEST_SURELY_UNSET}": environment variable KPLAY_TEST_SURELY_UNSET is not set`},
		{"Host a\n  HostName %p.example\n", `:2: HostName: "%p.example": unknown token %p`},
		{"Host a\n  ProxyJump %r@b\n", `:2: ProxyJump: "%r@b": kplay does not expand tokens`},
		{"Host a\n  UserKnownHostsFile none\n", `:2: UserKnownHostsFile: none is not supported`},
		{"Host a\n  IdentityFile ~bob/.ssh/id\n", `:2: IdentityFile: "~bob/.ssh/id": ~user is not supported`},
		{"Host a\n  User ops root\n", `:2: User: one value expected, got 2`},
		{"Host a\n  User \"ops\n", `:2: User: unterminated quote`},
		{"Host a\n  User\n", `:2: User: no argument after the keyword`},
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
}

// TestTokens: paths get ~ and the tokens expanded with the connection's
// final values (the caller's, else the file's, else the defaults).
func TestTokens(t *testing.T) {
	home, _ := os.UserHomeDir()
	me, _ := user.Current()
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	t.Setenv("KPLAY_TEST_KEYDIR", "/keys")
	conf := "Host cp*\n  HostName %h.example\n  Port 2200\n  User ops\n" +
		"Host *\n  IdentityFile ~/.ssh/%h-%p-%r\n  IdentityFile /k/%u/%i/%d/%%/%n/%l/%L/%k\n  IdentityFile ${KPLAY_TEST_KEYDIR}/%C\n" +
		"  CertificateFile %d/c/%r@%h-cert.pub\n  UserKnownHostsFile ~/kh/%h /kh/%n\n"
	f, _ := load(t, conf)
	uid := strconv.Itoa(os.Getuid())
	hash := func(s string) string { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	for _, tt := range []struct {
		q    Query
		want []string // identity files, then certificate files, then known_hosts files
	}{
		{Query{Host: "cp1", DefaultUser: "root"}, []string{
			home + "/.ssh/cp1.example-2200-ops", "/k/" + me.Username + "/" + uid + "/" + home + "/%/cp1/" + host + "/" + short + "/cp1",
			"/keys/" + hash(host+"cp1.example2200ops"), home + "/c/ops@cp1.example-cert.pub", home + "/kh/cp1.example", "/kh/cp1"}},
		{Query{Host: "cp1", HostName: "10.0.0.1", User: "admin", Port: 22, DefaultUser: "root"}, []string{
			home + "/.ssh/10.0.0.1-22-admin", "/k/" + me.Username + "/" + uid + "/" + home + "/%/cp1/" + host + "/" + short + "/cp1",
			"/keys/" + hash(host+"10.0.0.122admin"), home + "/c/admin@10.0.0.1-cert.pub", home + "/kh/10.0.0.1", "/kh/cp1"}},
		{Query{Host: "db", DefaultUser: "root"}, []string{
			home + "/.ssh/db-22-root", "/k/" + me.Username + "/" + uid + "/" + home + "/%/db/" + host + "/" + short + "/db",
			"/keys/" + hash(host+"db22root"), home + "/c/root@db-cert.pub", home + "/kh/db", "/kh/db"}},
	} {
		h := f.Lookup(tt.q)
		got := append(append(append([]string(nil), h.IdentityFiles...), h.CertificateFiles...), h.KnownHostsFiles...)
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%+v:\n got %q\nwant %q", tt.q, got, tt.want)
		}
	}
}

// TestInclude: an Include's blocks apply where it stands; one inside a
// block that does not apply contributes nothing; its own Host lines end
// with its file; relative names are in ~/.ssh; errors name the included file.
func TestInclude(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(home, ".ssh", "conf.d"), 0o700))
	must(os.WriteFile(filepath.Join(home, ".ssh", "conf.d", "a.conf"), []byte("Port 2100\nHost x\n  User fromx\n"), 0o600))
	must(os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte("Host b\n  Include conf.d/*.conf\n  User fromb\nHost *\n  User star\n"), 0o600))
	f, err := Load("")
	must(err)
	for _, tt := range []struct {
		host, want string
	}{
		{"b", "2100 fromb"}, // the include's Host x ends with its file: User fromb applies to b
		{"x", "0 star"},     // the include stands in Host b: nothing in it applies to x
		{"c", "0 star"},
	} {
		h := f.Lookup(Query{Host: tt.host})
		if got := strconv.Itoa(h.Port) + " " + h.User; got != tt.want {
			t.Errorf("%s: %s, want %s", tt.host, got, tt.want)
		}
	}
	bad := filepath.Join(home, ".ssh", "conf.d", "b.conf")
	must(os.WriteFile(bad, []byte("\nMatch exec true\n"), 0o600))
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), bad+`:2: Match: criterion "exec"`) {
		t.Errorf("a Match exec in an included file: %v", err)
	}
	must(os.WriteFile(bad, []byte("Include conf.d/b.conf\n"), 0o600))
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "nested Includes") {
		t.Errorf("an Include loop: %v", err)
	}
}
