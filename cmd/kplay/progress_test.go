package main

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal and returns its terminal end.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return pts
}

// TestProgressTo: a live progress line only on a terminal whose TERM can
// move the cursor; colour only without NO_COLOR.
func TestProgressTo(t *testing.T) {
	pts := openPTY(t)
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
