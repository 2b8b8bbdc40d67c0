package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
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

// TestResumeCommand: the command that finishes a run repeats what selects
// its steps and how it connects, never the variables' values.
func TestResumeCommand(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"pb.yaml", "-i", "a.ini", "-i", "b.yaml"}, "kplay run pb.yaml -i a.ini -i b.yaml --limit cp2,cp3"},
		{[]string{"pb.yaml", "-i", "inv", "--tags", "renew,verify", "--skip-tags", "kubeconfig", "--start-at-step", "renew certs", "-u", "ops", "-b", "-F", "ssh cfg"},
			"kplay run pb.yaml -i inv --tags renew --tags verify --skip-tags kubeconfig --start-at-step 'renew certs' --ssh-config 'ssh cfg' --user ops --become --limit cp2,cp3"},
		{[]string{"pb.yaml", "-i", "inv", "-e", "token=SECRET", "--var", "x=1"}, "kplay run pb.yaml -i inv --limit cp2,cp3 (and the same -e/--var values as this run)"},
	}
	for _, tt := range tests {
		f, err := parseFlags("run", tt.args, io.Discard, io.Discard, true, false)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if got := resumeCommand(f, []string{"cp2", "cp3"}); got != tt.want {
			t.Errorf("%v:\n got %s\nwant %s", tt.args, got, tt.want)
		}
		if got := resumeCommand(f, []string{"cp2"}); strings.Contains(got, "SECRET") {
			t.Errorf("the resume command repeats a variable's value: %s", got)
		}
	}
}
