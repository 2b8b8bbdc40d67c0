// Package ptytest opens pseudo-terminals for tests that need a real
// terminal: progress output, and secrets typed at a prompt.
package ptytest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Open opens a pseudo-terminal and returns its controller end (what a
// person types into and sees) and its terminal end (what a program reads
// and writes), both closed when the test ends. Without pseudo-terminals
// the test is skipped, saying so.
func Open(tb testing.TB) (ptm, pts *os.File) {
	tb.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		tb.Skipf("SKIP: no pseudo-terminals here: %v", err)
	}
	tb.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		tb.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		tb.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pts.Close() })
	return ptm, pts
}
