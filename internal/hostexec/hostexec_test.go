package hostexec

import (
	"errors"
	"fmt"
	"testing"
)

// TestExitErrorMessage pins the messages users (and integration tests) see.
func TestExitErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		e    ExitError
		want string
	}{
		{ExitError{Status: 7}, "exit status 7"},
		{ExitError{Status: 7, Stderr: " failing on purpose\n"}, "exit status 7: failing on purpose"},
		{ExitError{Status: -1, Signal: "KILL", Stderr: "x"}, "killed by signal KILL: x"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestExitStatus(t *testing.T) {
	err := fmt.Errorf("step: %w", &ExitError{Status: 3})
	if st, ok := ExitStatus(err); !ok || st != 3 {
		t.Errorf("ExitStatus(wrapped) = %d, %v; want 3, true", st, ok)
	}
	if _, ok := ExitStatus(errors.New("other")); ok {
		t.Error("ExitStatus(other) reported an exit status")
	}
	if _, ok := ExitStatus(nil); ok {
		t.Error("ExitStatus(nil) reported an exit status")
	}
}

func TestTail(t *testing.T) {
	if got := Tail("a\nb\nc\n\n", 2); got != "b\nc" {
		t.Errorf("Tail = %q, want %q", got, "b\nc")
	}
	if got := Tail("one", 5); got != "one" {
		t.Errorf("Tail = %q, want %q", got, "one")
	}
}
