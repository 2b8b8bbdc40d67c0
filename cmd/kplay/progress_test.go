package main

import (
	"os"
	"testing"

	"github.com/kplay/kplay/internal/ptytest"
)

// TestProgressTo: a live progress line only on a terminal whose TERM can
// move the cursor; colour only without NO_COLOR.
func TestProgressTo(t *testing.T) {
	_, pts := ptytest.Open(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	tests := []struct {
		name        string
		out         *os.File
		env         map[string]string
		live, color bool
	}{
		{"terminal", pts, map[string]string{"TERM": "xterm-256color"}, true, true},
		{"terminal, NO_COLOR", pts, map[string]string{"TERM": "xterm", "NO_COLOR": "1"}, true, false},
		{"terminal, TERM=dumb", pts, map[string]string{"TERM": "dumb"}, false, false},
		{"terminal, no TERM", pts, map[string]string{}, false, false},
		{"pipe", w, map[string]string{"TERM": "xterm"}, false, false},
	}
	for _, tt := range tests {
		progress, color := progressTo(tt.out, func(k string) string { return tt.env[k] })
		if (progress != nil) != tt.live || color != tt.color {
			t.Errorf("%s: live %v color %v, want %v %v", tt.name, progress != nil, color, tt.live, tt.color)
		}
	}
}
