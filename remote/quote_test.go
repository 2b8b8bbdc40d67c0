package remote

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// shellArgs runs `printf '%s\0' WORDS` through a real /bin/sh and returns the
// NUL-separated arguments it saw.
func shellArgs(t testing.TB, words string) []string {
	out, err := exec.Command("/bin/sh", "-c", "printf '%s\\0' "+words).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", words, err)
	}
	parts := strings.Split(string(out), "\x00")
	return parts[:len(parts)-1]
}

func TestQuoteTable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"/etc/kubernetes/pki", "/etc/kubernetes/pki"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$(touch /tmp/x)", "'$(touch /tmp/x)'"},
		{"`id`", "'`id`'"},
		{"'; id #", `''\''; id #'`},
		{"a\nb", "'a\nb'"},
		{"*", "'*'"},
		{"~", "'~'"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := shellArgs(t, Quote(tt.in)); len(got) != 1 || got[0] != tt.in {
			t.Errorf("sh saw %q for Quote(%q), want exactly one word", got, tt.in)
		}
	}
}

// FuzzQuote checks that any string (without NUL, which no argv can hold)
// reaches a real shell as exactly one argument, byte for byte.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", "a b", "'", "''", `\`, "$(id)", "`id`", "'; id #", "\n", "\xff\xfe", "-n", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			t.Skip("argv cannot hold NUL")
		}
		got := shellArgs(t, Quote(s)+" "+Quote(s))
		if len(got) != 2 || got[0] != s || got[1] != s {
			t.Fatalf("Quote(%q) arrived as %q", s, got)
		}
	})
}

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
		{key, Tail(key, 5), "(stderr withheld: it held a PEM private key)"},
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
