package main

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-multierror"

	"github.com/kplay/kplay/runner"
)

// TestWriteHostErrors checks the stderr summary of a failed run: one line
// per host error, multi-line stderr tails folded.
func TestWriteHostErrors(t *testing.T) {
	var merr *multierror.Error
	merr = multierror.Append(merr, fmt.Errorf("cp1: step %q: %w", "renew", errors.New("exit status 7: a\nb")))
	merr = multierror.Append(merr, errors.New("cp2: connection refused"))
	var b bytes.Buffer
	writeHostErrors(&b, merr.ErrorOrNil())
	want := "kplay: cp1: step \"renew\": exit status 7: a | b\nkplay: cp2: connection refused\n"
	if b.String() != want {
		t.Errorf("stderr = %q, want %q", b.String(), want)
	}
	b.Reset()
	writeHostErrors(&b, nil)
	if b.Len() != 0 {
		t.Errorf("stderr = %q for a run without errors, want nothing", b.String())
	}
	b.Reset()
	writeHostErrors(&b, errors.New("plain"))
	if b.String() != "kplay: plain\n" {
		t.Errorf("stderr = %q, want one line", b.String())
	}
}

func TestExitCode(t *testing.T) {
	fail := errors.New("cp1: failed")
	for _, tt := range []struct {
		rep  runner.Report
		err  error
		want int
	}{
		{runner.Report{}, nil, exitOK},
		{runner.Report{}, fail, exitFailed},
		{runner.Report{Interrupted: true}, fail, exitInterrupt},
		{runner.Report{Interrupted: true}, nil, exitInterrupt},
	} {
		if got := exitCode(&tt.rep, tt.err); got != tt.want {
			t.Errorf("exitCode(interrupted=%v, %v) = %d, want %d", tt.rep.Interrupted, tt.err, got, tt.want)
		}
	}
}
