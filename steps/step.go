// Package steps defines the step interface and every built-in step type.
//
// A step has a read-only half (Plan), used by --dry-run, and a changing half
// (Apply), which may return an Undo. Steps never import the runner; they see
// one host through the Host interface, which remote implements over SSH and
// tests implement with a fake.
package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sync"
	"time"
)

// Host is one target host as a step sees it.
type Host interface {
	// Name is the inventory name of the host.
	Name() string
	// Address is the address kplay dials.
	Address() string
	// Run runs a shell command on the host. A non-zero exit is a *hostexec.ExitError.
	Run(ctx context.Context, cmd string) (stdout []byte, err error)
	// RunInput is Run with data fed to the command's stdin.
	RunInput(ctx context.Context, cmd string, stdin []byte) (stdout []byte, err error)
	// ReadFile reads a file from the host. Private keys (*.key) are refused.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// WriteFile writes a file on the host atomically (temp file, then rename) with mode.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
	// DialContext opens a TCP connection made by the host to addr (as the
	// host resolves and routes it), carried over the host's own SSH
	// connection, so that a check works wherever SSH does. It fails with
	// hostexec.ErrForwardingRefused when the host's SSH server forbids it.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Reconnector is a Host whose connection can be opened again after it was
// lost: one attempt, bounded by ctx.
type Reconnector interface {
	Reconnect(ctx context.Context) error
}

// Target is a host plus the state shared by the steps of one run on it.
type Target struct {
	Host
	// RunID identifies this run; backups and locks are named after it.
	RunID string
	// Facts is shared by the steps of this host in this run, in step order.
	Facts *Facts
	// Now is the controller's clock; tests may replace it.
	Now func() time.Time
	// Restarts records the static pods restart_apiserver restarted, for
	// renew_certs' undo: restoring old certificates must restart them again.
	Restarts RestartLog
}

// NewTarget returns a Target with empty facts and the real clock.
func NewTarget(h Host, runID string) *Target {
	return &Target{Host: h, RunID: runID, Facts: &Facts{}, Now: time.Now}
}

// Facts is a small concurrency-safe map that lets a step leave a value for a
// later step on the same host (for example the backup directory).
type Facts struct {
	mu sync.Mutex
	m  map[string]any
}

// Get returns the fact stored under key.
func (f *Facts) Get(key string) (any, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[key]
	return v, ok
}

// Set stores a fact under key.
func (f *Facts) Set(key string, v any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]any{}
	}
	f.m[key] = v
}

// Step is one configured step, already bound to one host's variables.
type Step interface {
	// Plan probes read-only and says what Apply would do. It must not change the host.
	Plan(ctx context.Context, t *Target) (Plan, error)
	// Apply makes the change. A Result with an Undo can be rolled back.
	// With an error, the Result's Details and Data are still reported but
	// its Undo is ignored: a failing Apply must leave the host as it found
	// it, or return a RestoredError saying how it restored it.
	Apply(ctx context.Context, t *Target) (Result, error)
}

// RunOncer is implemented by step types that run on one host only by default.
type RunOncer interface {
	// RunOnce reports whether the step runs on the first host that reaches it only.
	RunOnce() bool
}

// Plan is what a step would do on one host.
type Plan struct {
	// Summary is one line, for example the exact command a shell step would run.
	Summary string `json:"summary"`
	// WouldChange is false when the step is read-only or has nothing to do.
	WouldChange bool `json:"would_change"`
	// Details are extra lines (for example one per certificate).
	Details []string `json:"details,omitempty"`
	// Data is structured detail for JSON output.
	Data any `json:"data,omitempty"`
}

// Result is what Apply did.
type Result struct {
	// Changed is true when the host was changed.
	Changed bool
	// Message is a one-line summary for the report.
	Message string
	// Details are extra lines for the report (warnings, per-item results).
	Details []string
	// Data is structured detail for JSON output (for example certificates).
	Data any
	// Output is a command's full output, as the transport returned it, for
	// -v and the run log (a shell step's stdout).
	Output []byte
	// Undo reverts the change, or is nil.
	Undo *Undo
}

// Undo reverts one applied change. It is called with a fresh context, after
// the run's context may already be cancelled, and may fail.
type Undo struct {
	// Desc says what the undo does, for the report.
	Desc string
	// Fn performs the undo.
	Fn func(ctx context.Context, t *Target) error
	// Restore tells a person how to restore by hand if Fn fails.
	Restore string
	// Repeatable says Fn may run again when a lost SSH connection cut it
	// short: the runner then reconnects and runs it once more. True for
	// kplay's own undos, which put things back from a backup; never for a
	// shell step's undo command, which need not be safe to repeat.
	Repeatable bool
}

// SkipError marks a step as skipped, with a reason. It is not a failure.
type SkipError struct{ Reason string }

// Error returns the reason.
func (s *SkipError) Error() string { return "skipped: " + s.Reason }

// Skip returns a *SkipError with a formatted reason.
func Skip(format string, a ...any) error { return &SkipError{Reason: fmt.Sprintf(format, a...)} }

// IsSkip reports whether err is a skip, and its reason.
func IsSkip(err error) (string, bool) {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason, true
	}
	return "", false
}

// KeptError is what an Undo returns when it declines on purpose: undoing
// the change would leave the host worse off than keeping it (for example,
// putting back certificates that have already expired). It is not a
// failure: the change stays, and Reason says why.
type KeptError struct{ Reason string }

// Error returns the reason.
func (k *KeptError) Error() string { return "kept: " + k.Reason }

// Keep returns a *KeptError with a formatted reason.
func Keep(format string, a ...any) error { return &KeptError{Reason: fmt.Sprintf(format, a...)} }

// RestoredError is a failed step that undid its own partial change before
// returning: the host is as it was before the step.
type RestoredError struct {
	// Err is the failure.
	Err error
	// How says how the step restored the host.
	How string
}

// Error says what failed and that the host was restored.
func (e *RestoredError) Error() string { return e.Err.Error() + "; " + e.How }

// Unwrap returns the failure.
func (e *RestoredError) Unwrap() error { return e.Err }
