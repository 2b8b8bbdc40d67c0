// Package hostexec holds the error types of the host contract: what running
// a command or reading a file on a host may fail with. The transport
// (remote) constructs them; steps and the runner inspect them. Neither side
// needs to know about the other, so steps never see SSH.
package hostexec

import (
	"errors"
	"fmt"
	"strings"
)

// ExitError is a command that ran on a host and exited non-zero (or by a signal).
type ExitError struct {
	// Status is the exit status; -1 when the command died by a signal.
	Status int
	// Signal is the signal name when the command was killed, else "".
	Signal string
	// Stderr is the tail of the command's standard error.
	Stderr string
}

// Error says the exit status and the tail of stderr.
func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Signal != "" {
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	} else {
		fmt.Fprintf(&b, "exit status %d", e.Status)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		fmt.Fprintf(&b, ": %s", s)
	}
	return b.String()
}

// ExitStatus returns the exit status of err if it is (or wraps) an *ExitError.
func ExitStatus(err error) (int, bool) {
	var e *ExitError
	if errors.As(err, &e) {
		return e.Status, true
	}
	return 0, false
}

// ErrSecretPath is returned when a caller asks to read a private key off a host.
var ErrSecretPath = errors.New("refusing to read a private key off the host")

// ErrNUL is returned for a command that holds a NUL byte, which no remote
// shell command line can carry.
var ErrNUL = errors.New("refusing to run a command that contains a NUL byte")

// ErrForwardingRefused is returned by a host's DialContext when its SSH
// server forbids TCP forwarding (sshd's AllowTcpForwarding no): a check
// must then run on the host instead.
var ErrForwardingRefused = errors.New("the host's SSH server refuses TCP forwarding (AllowTcpForwarding no)")

// Tail returns the last n lines of s, trimmed.
func Tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
