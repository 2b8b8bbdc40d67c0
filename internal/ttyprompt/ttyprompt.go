// Package ttyprompt reads a secret typed on a terminal, with echo turned
// off BEFORE the prompt is shown, so that a passphrase typed as soon as the
// prompt appears is never echoed.
package ttyprompt

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// ErrInterrupted is returned when Ctrl-C (or Ctrl-D on an empty line) ends
// the prompt.
var ErrInterrupted = errors.New("interrupted at the prompt")

// maxSecret bounds what is read, so that a stuck key cannot grow it forever.
const maxSecret = 4096

// ReadSecret turns off tty's echo (raw mode), writes prompt to out, reads
// one line from tty and puts the terminal back as it was. Backspace and
// Ctrl-U edit the line; Ctrl-C, or Ctrl-D on an empty line, give
// ErrInterrupted. The secret is never written anywhere.
func ReadSecret(tty *os.File, out io.Writer, prompt string) ([]byte, error) {
	fd := int(tty.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("turning off echo on %s: %w", tty.Name(), err)
	}
	fmt.Fprint(out, prompt)
	secret, err := readLine(tty)
	if rerr := term.Restore(fd, old); rerr != nil && err == nil {
		err = fmt.Errorf("restoring %s: %w", tty.Name(), rerr)
	}
	fmt.Fprintln(out)
	if err != nil {
		clear(secret)
		return nil, err
	}
	return secret, nil
}

// readLine reads bytes up to CR or LF, applying the line editing a
// terminal in cooked mode would.
func readLine(r io.Reader) ([]byte, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 0 {
			if err == nil {
				continue
			}
			clear(line)
			return nil, fmt.Errorf("reading the terminal: %w", err)
		}
		switch c := b[0]; c {
		case '\r', '\n':
			return line, nil
		case 0x03: // Ctrl-C
			clear(line)
			return nil, ErrInterrupted
		case 0x04: // Ctrl-D
			if len(line) == 0 {
				return nil, ErrInterrupted
			}
		case 0x7f, 0x08: // backspace: drop the last UTF-8 character
			for len(line) > 0 {
				last := line[len(line)-1]
				line = line[:len(line)-1]
				if last&0xC0 != 0x80 {
					break
				}
			}
		case 0x15: // Ctrl-U
			clear(line)
			line = line[:0]
		default:
			if len(line) >= maxSecret {
				clear(line)
				return nil, fmt.Errorf("more than %d bytes typed", maxSecret)
			}
			line = append(line, c)
		}
	}
}
