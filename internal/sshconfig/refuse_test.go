package sshconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefuse: a key kplay does not honour but that decides how a host is
// reached or which key it must show is refused for the hosts it applies
// to, naming file, line and key; "none" and other hosts' blocks are fine.
func TestRefuse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config")
	conf := "Host legacy\n  ProxyCommand ssh -W %h:%p jump\n" +
		"Host pinned\n  HostKeyAlias cp-pinned\n" +
		"Host cmd\n  KnownHostsCommand /bin/keys %H\n" +
		"Host direct\n  ProxyCommand none\n" +
		"Host *\n  User ops\n"
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ alias, want string }{
		{"legacy", p + ":2: ProxyCommand: applies to legacy: kplay does not run ProxyCommand"},
		{"pinned", p + ":4: HostKeyAlias: applies to pinned:"},
		{"cmd", p + ":6: KnownHostsCommand: applies to cmd:"},
		{"direct", ""},
		{"other", ""},
	} {
		err := f.Refuse(tt.alias)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tt.alias, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.alias, err, tt.want)
		}
	}
	var none *File
	if err := none.Refuse("x"); err != nil {
		t.Errorf("no file: %v", err)
	}
}
