package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSplitHostPattern(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a,b[1], c[2:3] , d", "[a b[1] c[2:3] d]"},
		{"web:&cp:!cp2", "[web &cp !cp2]"},
		{"cp[1:3]", "[cp[1:3]]"},
		{"fe80::1", "[fe80::1]"},
		{"host:22", "[host:22]"},
		{"web:db", "[web db]"},
		{" , ", "[]"},
	} {
		if got := fmt.Sprint(SplitHostPattern(tc.in)); got != tc.want {
			t.Errorf("SplitHostPattern(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestFnmatch(t *testing.T) {
	for _, tc := range []struct {
		pat, name string
		want      bool
	}{
		{"cp*", "cp10", true},
		{"cp*", "xcp1", false},
		{"cp?", "cp10", false},
		{"web[0-9]*", "web1x", true},
		{"web[0-9]*", "webx", false},
		{"cp[!1]*", "cp2", true},
		{"cp[!1]*", "cp10", false},
		{"a.b", "axb", false},
		{"[b-a]", "a", false},
		{"x[", "x[", true},
		{"a|b", "a", false},
	} {
		re, err := fnmatchRegexp(tc.pat)
		if err != nil {
			t.Fatalf("%q: %v", tc.pat, err)
		}
		if got := re.MatchString(tc.name); got != tc.want {
			t.Errorf("%q matches %q: %v, want %v (%s)", tc.pat, tc.name, got, tc.want, re)
		}
	}
}

// TestSelect checks order of operations and errors on the oracle corpus,
// without Ansible.
func TestSelect(t *testing.T) {
	inv, err := Load("testdata/patterns/hosts.ini")
	if err != nil {
		t.Fatal(err)
	}
	limitFile := filepath.Join(t.TempDir(), "limit")
	if err := os.WriteFile(limitFile, []byte("cp1\n\nnope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ limit, want string }{
		{"!cp2:web", "[web1 web2 webx]"},
		{"web:&cp", "[cp2]"},
		{"cp*:!cp2", "[cp1 cp10]"},
		{"db[-1]", "[cp10]"},
		{"nope", `error: --limit: host pattern "nope" matches no host or group`},
		{"~(", `error: --limit: host pattern "~(" is not a valid pattern`},
		{"@" + limitFile, `error: ` + limitFile + `:3: host pattern "nope" matches no host or group`},
		{"@/nonexistent", "error: --limit @/nonexistent: open /nonexistent"},
	} {
		got, err := selectLimit(inv, tc.limit)
		s := fmt.Sprint(got)
		if err != nil {
			s = "error: " + err.Error()
		}
		if !strings.HasPrefix(s, tc.want) {
			t.Errorf("--limit %s: %s, want %s", tc.limit, s, tc.want)
		}
	}
}
