package remote

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/kplay/kplay/internal/hostexec"
)

func TestIsSecretPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/etc/kubernetes/pki/ca.key":          true,
		"/etc/kubernetes/pki/etcd/server.key": true,
		"/root/.ssh/id_ed25519":               true,
		"/root/.ssh/id_ed25519.pub":           false,
		"/etc/kubernetes/pki/ca.crt":          false,
		"/etc/kubernetes/admin.conf":          false,
		"/etc/ssh/ssh_host_ed25519_key":       true,
		"/etc/ssh/ssh_host_ed25519_key.pub":   false,
	} {
		if got := IsSecretPath(p); got != want {
			t.Errorf("IsSecretPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestCheckSecret(t *testing.T) {
	if err := checkSecret([]byte("-----BEGIN CERTIFICATE-----\nxx")); err != nil {
		t.Errorf("a certificate was refused: %v", err)
	}
	for _, k := range []string{"-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----", "-----BEGIN OPENSSH PRIVATE KEY-----"} {
		if err := checkSecret([]byte("x\n" + k + "\n")); err == nil {
			t.Errorf("%s was not refused", k)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := tailBuffer{max: 4}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if b.String() != "defg" {
		t.Errorf("tail = %q", b.String())
	}
	var l limitedBuffer
	l.max = 3
	l.Write([]byte("ab"))
	l.Write([]byte("cd"))
	if !bytes.Equal(l.Bytes(), []byte("abc")) {
		t.Errorf("limited = %q", l.Bytes())
	}
}

func TestRedactStderr(t *testing.T) {
	key := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIK\n-----END EC PRIVATE KEY-----\n"
	for _, tt := range []struct{ kept, tail, want string }{
		{"oops\n", "oops", "oops"},
		{key, hostexec.Tail(key, 5), "(stderr withheld: it held a PEM private key)"},
		{key + "a\nb\nc\nd\ne\n", "a\nb\nc\nd\ne", "(stderr withheld: it held a PEM private key)"},
	} {
		if got := redactStderr(tt.kept, tt.tail); got != tt.want {
			t.Errorf("redactStderr(%q) = %q, want %q", tt.tail, got, tt.want)
		}
	}
	if withoutSecret([]byte(key)) != nil || string(withoutSecret([]byte("x"))) != "x" {
		t.Error("withoutSecret")
	}
}

// TestKillScriptParses checks the killer script with a real sh: it must
// parse and finish when nothing carries the tag.
func TestKillScriptParses(t *testing.T) {
	if out, err := exec.Command("/bin/sh", "-c", killScript("nothing.1")).CombinedOutput(); err != nil {
		t.Fatalf("kill script: %v %s", err, out)
	}
}
