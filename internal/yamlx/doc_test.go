package yamlx

import (
	"errors"
	"strings"
	"testing"
)

func TestParseOne(t *testing.T) {
	tests := []struct {
		name, in string
		nilRoot  bool
		line     int // of the error; 0: no error
		msg      string
	}{
		{"one document", "a: 1\n", false, 0, ""},
		{"empty", "", true, 0, ""},
		{"comment only", "# nothing\n", true, 0, ""},
		{"syntax error", "a: 1\nb: [\n", true, 2, "invalid YAML"},
		{"two documents", "a: 1\n---\nb: 2\n", true, 2, "more than one YAML document"},
		{"tab indent", "a:\n\tb: 1\n", true, 2, "invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseOne([]byte(tt.in))
			if tt.line == 0 {
				if err != nil || (n == nil) != tt.nilRoot {
					t.Fatalf("ParseOne = %v, %v", n, err)
				}
				return
			}
			var ye *Error
			if !errors.As(err, &ye) || ye.Line != tt.line || !strings.Contains(ye.Msg, tt.msg) {
				t.Fatalf("ParseOne error %v; want line %d and %q", err, tt.line, tt.msg)
			}
		})
	}
}
