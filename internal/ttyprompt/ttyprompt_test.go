package ttyprompt

import (
	"bufio"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/ptytest"
	"golang.org/x/sys/unix"
)

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
			ptm, pts := ptytest.Open(t)
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
