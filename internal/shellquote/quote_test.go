package shellquote

import (
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

func TestQuoteAll(t *testing.T) {
	words := []string{"kplay", "run", "a b", "it's", ""}
	if got := shellArgs(t, QuoteAll(words...)); strings.Join(got, "\x00") != strings.Join(words, "\x00") {
		t.Errorf("sh saw %q for QuoteAll(%q)", got, words)
	}
}

func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"/etc/kubernetes", "/etc/kubernetes"},
		{"a\nrm -rf /", "a?rm -rf /"},
		{"tab\there", "tab?here"},
		{"esc\x1b[31m", "esc?[31m"},
		{"del\x7f", "del?"},
		{"ünïcode ok", "ünïcode ok"},
		{"run_id=x\nuser=root", "run_id=x?user=root"},
	} {
		if got := Printable(c.in); got != c.want {
			t.Errorf("Printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
