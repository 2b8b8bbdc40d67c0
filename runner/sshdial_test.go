package runner

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/sshconfig"
)

func TestAnsibleSSHArgs(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "", want: ""},
		{in: "-o ProxyJump=ops@bastion:2222", want: "ops@bastion:2222"},
		{in: "-oProxyJump=b1,b2", want: "b1,b2"},
		{in: `-o "ProxyJump bastion"`, want: "bastion"},
		{in: "-J bastion -o ProxyJump=other", want: "bastion"},
		{in: "-Jbastion", want: "bastion"},
		{in: "-o StrictHostKeyChecking=no", err: "-o StrictHostKeyChecking is not supported"},
		{in: "-o ProxyCommand='ssh -W %h:%p b'", err: "-o ProxyCommand is not supported"},
		{in: "-C", err: `ssh option "-C" is not supported`},
		{in: "-J", err: "-J needs a value"},
		{in: "-o 'ProxyJump=b", err: "unterminated ' quote"},
	} {
		got, err := AnsibleSSHArgs(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseJump(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string // user@address:port per hop, port 0 when unset
		err  bool
	}{
		{in: "", want: nil},
		{in: "none", want: nil},
		{in: "bastion", want: []string{"@bastion:0"}},
		{in: "ops@b1:2222,b2", want: []string{"ops@b1:2222", "@b2:0"}},
		{in: "ssh://me@[fd00::1]:22", want: []string{"me@fd00::1:22"}},
		{in: "b1:99999", err: true},
		{in: "b1,,b2", err: true},
		{in: "b;rm", err: true},
	} {
		hops, err := parseJump(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: err %v", tt.in, err)
			continue
		}
		var got []string
		for _, h := range hops {
			got = append(got, h.User+"@"+h.Address+":"+strconv.Itoa(h.Port))
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%q = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestResolveHostPrecedence: the inventory beats ssh_config, which beats
// kplay's defaults; StrictHostKeyChecking only makes checking stricter.
func TestResolveHostPrecedence(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config")
	conf := `Host cp*
  HostName 10.9.9.9
  User sshuser
  Port 2200
  IdentityFile ~/.ssh/cp_key
  ConnectTimeout 4
  ProxyJump jump@b1:2022,b2
  UserKnownHostsFile /kh/one /kh/two
  StrictHostKeyChecking yes
Host b2
  User b2user
  Port 2023
`
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := sshconfig.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"port", "user", "known_hosts", "connect_timeout"}
	for _, tt := range []struct {
		name string
		h    HostSpec
		want string
	}{
		{"ssh_config fills defaults", HostSpec{Name: "cp1", Address: "cp1", Port: 22, User: "root", KnownHosts: "~/.ssh/known_hosts", ConnectTimeout: 10 * time.Second, Defaulted: all},
			"10.9.9.9 2200 sshuser /kh/one 4s accept=false jump=jump@b1:2022,b2user@b2:2023"},
		{"inventory wins", HostSpec{Name: "cp1", Address: "10.1.1.1", Port: 22, User: "ops", KnownHosts: "/inv/kh", ConnectTimeout: 3 * time.Second, ProxyJump: "none", Defaulted: nil},
			"10.1.1.1 22 ops /inv/kh 3s accept=true jump="}, // patterns match the address, as ssh is given ansible_host
		{"no match: defaults", HostSpec{Name: "db", Address: "db", Port: 22, User: "root", KnownHosts: "~/.ssh/known_hosts", ConnectTimeout: 10 * time.Second, Defaulted: all},
			"db 22 root ~/.ssh/known_hosts 10s accept=true jump="},
	} {
		c, err := resolveSSH(&tt.h, f, SSHOptions{AcceptNew: true})
		if err != nil {
			t.Fatal(err)
		}
		var jumps []string
		for _, j := range c.Jump {
			jumps = append(jumps, j.User+"@"+j.Address+":"+strconv.Itoa(j.Port))
		}
		got := strings.Join([]string{c.Address, strconv.Itoa(c.Port), c.User, c.KnownHosts, c.ConnectTimeout.String(),
			"accept=" + map[bool]string{true: "true", false: "false"}[c.AcceptNewHostKeys], "jump=" + strings.Join(jumps, ",")}, " ")
		if got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

// TestResolveJumpChain: a bastion named by ProxyJump is resolved through
// ssh_config like any host (HostName, User, Port, IdentityFile, its
// UserKnownHostsFiles), its own ProxyJump puts a chain before it (only the
// first hop's, as with ssh -J a,b), the value's user@ and :port win, and a
// ProxyJump loop is an error naming it.
func TestResolveJumpChain(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config")
	conf := `Host cp*
  ProxyJump inner
Host inner
  HostName 10.0.0.2
  User innerops
  Port 2202
  IdentityFile /k/inner
  UserKnownHostsFile /kh/inner1 /kh/inner2
  ProxyJump outer
Host outer
  HostName outer.example
  User outerops
  Port 2201
  IdentityFile /k/outer
  ProxyJump none
Host db*
  ProxyJump x@inner:2999,outer
Host loop1
  ProxyJump loop2
Host loop2
  ProxyJump loop3
Host loop3
  ProxyJump loop1
Host self
  ProxyJump self
`
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := sshconfig.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"port", "user", "known_hosts", "connect_timeout"}
	for _, tt := range []struct {
		host, want, err string
	}{
		{host: "cp1", want: "outerops@outer.example:2201 keys=/k/outer,/inv/key kh=/inv/kh+ | innerops@10.0.0.2:2202 keys=/k/inner,/inv/key kh=/kh/inner1+/kh/inner2"},
		{host: "db1", want: "outerops@outer.example:2201 keys=/k/outer,/inv/key kh=/inv/kh+ | x@10.0.0.2:2999 keys=/k/inner,/inv/key kh=/kh/inner1+/kh/inner2 | outerops@outer.example:2201 keys=/k/outer,/inv/key kh=/inv/kh+"},
		{host: "loop1", err: "ProxyJump loop: loop1 -> loop2 -> loop3 -> loop1"},
		{host: "self", err: "ProxyJump loop: self -> self"},
	} {
		h := &HostSpec{Name: tt.host, Address: tt.host, Port: 22, User: "root", Key: "/inv/key", KnownHosts: "/inv/kh", ConnectTimeout: 10 * time.Second, Defaulted: all}
		c, err := resolveSSH(h, f, SSHOptions{})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.host, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.host, err)
		}
		var hops []string
		for _, j := range c.Jump {
			hops = append(hops, j.User+"@"+j.Address+":"+strconv.Itoa(j.Port)+" keys="+strings.Join(j.IdentityFiles, ",")+
				" kh="+j.KnownHosts+"+"+strings.Join(j.MoreKnownHosts, "+"))
		}
		if got := strings.Join(hops, " | "); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.host, got, tt.want)
		}
	}
}

// TestKeepaliveSettings: the inventory's keepalive keys (kplay's format and
// the kplay_* variables in Ansible's), then ssh_config's ServerAliveInterval
// and ServerAliveCountMax, then remote's defaults (zero here).
func TestKeepaliveSettings(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte("defaults: {keepalive_interval: 10s, keepalive_count_max: 6}\nhosts:\n  cp1: {}\n  cp2: {keepalive_interval: 1m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ini, err := ParseInventory("hosts", []byte("cp3 kplay_keepalive_count_max=4\ncp4\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, []byte("Host cp3 cp4\n  ServerAliveInterval 7\n  ServerAliveCountMax 9\nHost *\n  ServerAliveInterval 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := sshconfig.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		h        *HostSpec
		interval time.Duration
		count    int
	}{
		{inv.Host("cp1"), 10 * time.Second, 6},
		{inv.Host("cp2"), time.Minute, 6},
		{ini.Host("cp3"), 7 * time.Second, 4},
		{ini.Host("cp4"), 7 * time.Second, 9},
	} {
		c, err := resolveSSH(tt.h, f, SSHOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c.KeepaliveInterval != tt.interval || c.KeepaliveMax != tt.count {
			t.Errorf("%s: keepalive %v × %d, want %v × %d", tt.h.Name, c.KeepaliveInterval, c.KeepaliveMax, tt.interval, tt.count)
		}
	}
	if c, _ := resolveSSH(&HostSpec{Name: "db", Address: "db"}, f, SSHOptions{}); c.KeepaliveInterval != 0 || c.KeepaliveMax != 0 {
		t.Errorf("db: keepalive %v × %d, want unset (ServerAliveInterval 0 leaves kplay's default)", c.KeepaliveInterval, c.KeepaliveMax)
	}
}
