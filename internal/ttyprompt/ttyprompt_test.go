package ttyprompt

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: its controller end and its terminal end.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("SKIP: no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

// TestReadSecret types on a real pseudo-terminal the moment the prompt
// appears: nothing typed is echoed, line editing works, Ctrl-C interrupts,
// and the terminal is left in the mode it was in.
func TestReadSecret(t *testing.T) {
	for _, c := range []struct {
		name, typed, want string
		err               error
	}{
		{"plain", "correct horse\r", "correct horse", nil},
		{"newline", "s3cret\n", "s3cret", nil},
		{"backspace", "abX\x7fc\r", "abc", nil},
		{"backspace over UTF-8", "pä\x7fa\r", "pa", nil},
		{"ctrl-u", "wrong\x15right\r", "right", nil},
		{"ctrl-c", "abc\x03", "", ErrInterrupted},
		{"ctrl-d on an empty line", "\x04", "", ErrInterrupted},
	} {
		t.Run(c.name, func(t *testing.T) {
			ptm, pts := openPTY(t)
			before, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				secret []byte
				err    error
			}
			done := make(chan result, 1)
			go func() {
				s, err := ReadSecret(pts, pts, "Passphrase: ")
				done <- result{s, err}
			}()
			var screen strings.Builder
			r := bufio.NewReader(ptm)
			for !strings.HasSuffix(screen.String(), "Passphrase: ") {
				b, err := r.ReadByte()
				if err != nil {
					t.Fatal(err)
				}
				screen.WriteByte(b)
			}
			if _, err := ptm.WriteString(c.typed); err != nil {
				t.Fatal(err)
			}
			var res result
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ReadSecret did not return")
			}
			if !errors.Is(res.err, c.err) || string(res.secret) != c.want {
				t.Errorf("got %q, %v; want %q, %v", res.secret, res.err, c.want, c.err)
			}
			after, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
			if err != nil || *after != *before {
				t.Errorf("the terminal's mode was not put back: %v", err)
			}
			// Whatever the terminal shows after the prompt is only the newline.
			pts.Close()
			rest := make([]byte, 256)
			n, _ := r.Read(rest)
			if shown := strings.TrimSpace(string(rest[:n])); shown != "" {
				t.Errorf("the terminal echoed %q", shown)
			}
		})
	}
}
