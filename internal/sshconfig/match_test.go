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

// TestMatch: the Match forms kplay supports (all, host PATTERN) apply to
// exactly the hosts they name, read by kevinburke/ssh_config: Match host
// against the name looked up (even when a HostName is set), globs,
// negated patterns, first value winning across Host and Match blocks, a
// Match block in an included file.
func TestMatch(t *testing.T) {
	inc := filepath.Join(t.TempDir(), "inc.conf")
	if err := os.WriteFile(inc, []byte("Match host inc*\n  Port 2020\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, conf string
		q          Query
		wantPort   int
	}{
		{"match host", "Match host web1\n  Port 2001\n", Query{Host: "web1"}, 2001},
		{"match host, other host", "Match host web1\n  Port 2001\n", Query{Host: "db1"}, 0},
		{"match host, glob", "Match host web*\n  Port 2002\n", Query{Host: "web17"}, 2002},
		{"match host, glob, other host", "Match host web*\n  Port 2002\n", Query{Host: "db17"}, 0},
		{"match host is the name looked up, not the caller's HostName", "Match host cp1\n  Port 2003\n", Query{Host: "cp1", HostName: "10.0.0.5"}, 2003},
		{"match host is the name looked up, not the file's HostName", "Host cp1\n  HostName 10.0.0.5\nMatch host 10.0.0.*\n  Port 2004\n", Query{Host: "cp1"}, 0},
		{"match host, only a negated pattern matches nothing", "Match host !b\n  Port 2005\n", Query{Host: "a"}, 0},
		{"match all", "Match all\n  Port 2006\n", Query{Host: "a"}, 2006},
		{"Match and host in any case", "MATCH Host a\n  Port 2007\n", Query{Host: "a"}, 2007},
		{"first value wins across blocks", "Match all\n  Port 2008\nHost a\n  Port 2009\n", Query{Host: "a"}, 2008},
		{"a Host block before wins", "Host a\n  Port 2009\nMatch host a\n  Port 2008\n", Query{Host: "a"}, 2009},
		{"block ends at the next Host", "Match host a\nHost b\n  Port 2010\n", Query{Host: "a"}, 0},
		{"host negated pattern", "Host * !a\n  Port 2011\n", Query{Host: "a"}, 0},
		{"host negated pattern, other", "Host * !a\n  Port 2011\n", Query{Host: "b"}, 2011},
		{"key=value", "Host=a\n  Port=2012\n", Query{Host: "a"}, 2012},
		{"match host in an included file", "Include " + inc + "\n", Query{Host: "inc1"}, 2020},
		{"match host in an included file, other host", "Include " + inc + "\n", Query{Host: "web1"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := load(t, tt.conf)
			if got := f.Lookup(tt.q).Port; got != tt.wantPort {
				t.Errorf("%q for %+v: Port %d, want %d", tt.conf, tt.q, got, tt.wantPort)
			}
		})
	}
}

// TestLoadRefuses: what the parser refuses (Match exec, criteria other
// than all and host), what it would misread (a comma list or several
// criteria after Match, quotes in patterns, an upper-case Match host
// pattern), and what kplay does not support, is an error naming the
// file, the line and the reason.
func TestLoadRefuses(t *testing.T) {
	for _, tt := range []struct{ conf, want string }{
		{"Host a\nMatch exec \"test -f /x\"\n  User ops\n", `:2: Match Exec is not supported (kplay supports only`},
		{"Match canonical host a\n", `:1: unsupported Match criterion "canonical"`},
		{"Match final\n", `:1: unsupported Match criterion "final"`},
		{"Match localnetwork 10.0.0.0/8\n", `:1: unsupported Match criterion "localnetwork"`},
		{"Match tagged x\n", `:1: unsupported Match criterion "tagged"`},
		{"Host a\n\nMatch user ops\n", `:3: unsupported Match criterion "user"`},
		{"Match originalhost a\n", `:1: unsupported Match criterion "originalhost"`},
		{"Match localuser me\n", `:1: unsupported Match criterion "localuser"`},
		{"Match !host a\n", `:1: unsupported Match criterion "!host"`},
		{"Match host\n", `:1: Match Host requires at least one pattern`},
		{"Host x\n  Port 22\nMatch host a,b\n  Port 2\n", `:3: Match: "host a,b": a comma-separated pattern list`},
		{"Match host *,!b\n", `:1: Match: "host *,!b": a comma-separated pattern list`},
		{"Match host a user ops\n", `:1: Match: "host a user ops": more than one criterion`},
		{"Match host a b\n", `:1: Match: "host a b": more than one criterion`},
		{"  match = host a exec true # x\n", `:1: Match: "host a exec true ": more than one criterion`},
		{"Match all host a\n", `:1: Match: "all host a": more than one criterion`},
		{"Match host \"a\"\n", `:1: Match: "host \"a\"": quoted patterns are not supported`},
		{"Match host WEB1\n", `:1: Match: "host WEB1": an upper-case pattern`},
		{"Host \"a\"\n", `:1: Host: "\"a\"": quoted patterns are not supported`},
		{"Host a\n  IdentityFile ~/.ssh/%h-%x\n", `:2: IdentityFile: "~/.ssh/%h-%x": unknown token %x`},
		{"Host a\n  CertificateFile /c/%T\n", `:2: CertificateFile: "/c/%T": unknown token %T`},
		{"Host a\n\n  UserKnownHostsFile /k/ok /k/%f\n", `:3: UserKnownHostsFile: "/k/%f": unknown token %f`},
		{"Host a\n  IdentityFile /k/%\n", `:2: IdentityFile: "/k/%" ends with a lone %`},
		{"Host a\n  IdentityFile /k/${KPLAY_TEST_SURELY_UNSET}\n", `:2: IdentityFile: "/k/${KPLAY_TEST_SURELY_UNSET}": environment variable KPLAY_TEST_SURELY_UNSET is not set`},
		{"Host a\n  HostName %p.example\n", `:2: HostName: "%p.example": unknown token %p`},
		{"Host a\n  ProxyJump %r@b\n", `:2: ProxyJump: "%r@b": kplay does not expand tokens`},
		{"Host a\n  UserKnownHostsFile none\n", `:2: UserKnownHostsFile: none is not supported`},
		{"Host a\n  UserKnownHostsFile \"/k/a b\"\n", `:2: UserKnownHostsFile: "/k/a b": quoted paths are not supported`},
		{"Host a\n  IdentityFile ~bob/.ssh/id\n", `:2: IdentityFile: "~bob/.ssh/id": ~user is not supported`},
		{"Host a\n  User ops root\n", `:2: User: one value expected, got 2`},
		{"Host a\n  User \"ops\n", `:2: User: "\"ops": quotes must enclose the whole value`},
		{"Host a\n  User\n", `:2: User: no value`},
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
// with its file; what is refused in an included file is reported with
// that file's name and line; an Include loop is an error.
func TestInclude(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	confd := filepath.Join(home, ".ssh", "conf.d")
	must(os.MkdirAll(confd, 0o700))
	must(os.WriteFile(filepath.Join(confd, "a.conf"), []byte("Port 2100\nHost x\n  User fromx\n"), 0o600))
	must(os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte("Host b\n  Include "+confd+"/*.conf\n  User fromb\nHost *\n  User star\n"), 0o600))
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
	bad := filepath.Join(confd, "b.conf")
	for _, tt := range []struct{ conf, want string }{
		{"\nMatch exec true\n", bad + ":2: Match Exec is not supported"},
		{"\n\nMatch host a,b\n", bad + `:3: Match: "host a,b": a comma-separated pattern list`},
		{"Host a\n  Port none\n", bad + `:2: Port: "none" is not a port`},
		{"Include " + bad + "\n", bad + ":1: Include: Includes nested more than 5 deep (a loop?)"},
	} {
		must(os.WriteFile(bad, []byte(tt.conf), 0o600))
		if _, err := Load(""); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q in an included file: %v, want %q", tt.conf, err, tt.want)
		}
	}
}
