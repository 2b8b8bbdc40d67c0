// Package runlog keeps a record of every kplay run on the controller: one
// JSON-lines file of the run's events per run, and the list of recent runs.
package runlog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kplay/kplay/runner"
)

// Dir is where run logs go: $XDG_STATE_HOME/kplay/runs, or
// ~/.local/state/kplay/runs when XDG_STATE_HOME is unset or not absolute
// (as the XDG base directory spec says).
func Dir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "kplay", "runs"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("run log directory: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".local", "state", "kplay", "runs"), nil
}

// Log is one run's log file. It implements runner.EventSink.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	err  error
}

// Create creates dir (0700, and its kplay parent) and in it runID.jsonl, mode 0600.
func Create(dir, runID string) (*Log, error) {
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating the run log directory: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("run log directory: %w", err)
		}
	}
	p := filepath.Join(dir, runID+".jsonl")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the run log: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("run log %s: %w", p, err)
	}
	return &Log{f: f, path: p}, nil
}

// Path is the log file's path.
func (l *Log) Path() string { return l.path }

// Event appends e as one JSON line. The first write error is kept for Close.
func (l *Log) Event(e runner.Event) {
	b, err := json.Marshal(e)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if err == nil {
		_, err = l.f.Write(append(b, '\n'))
	}
	if err != nil {
		l.err = fmt.Errorf("run log %s: %w", l.path, err)
	}
}

// Close closes the file and returns the first error of the log's writes.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.f.Close(); err != nil && l.err == nil {
		l.err = fmt.Errorf("run log %s: %w", l.path, err)
	}
	return l.err
}

// Run sums up one logged run.
type Run struct {
	ID       string
	Started  time.Time
	Playbook string
	File     string
	DryRun   bool
	// Outcome is ok, failed or interrupted; "unfinished" when the log has
	// no run_end (the run is still going, or kplay was killed).
	Outcome string
	Path    string
}

// List returns the newest n runs in dir (all when n <= 0), newest first.
// A missing dir means no runs.
func List(dir string, n int) ([]Run, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("listing runs: %w", err)
	}
	// Run ids start with their UTC start time, so names sort by age.
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	if n > 0 && len(paths) > n {
		paths = paths[:n]
	}
	var runs []Run
	for _, p := range paths {
		r, err := summarise(p)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// summarise reads a log's run_start and run_end.
func summarise(p string) (Run, error) {
	r := Run{ID: strings.TrimSuffix(filepath.Base(p), ".jsonl"), Outcome: "unfinished", Path: p}
	f, err := os.Open(p)
	if err != nil {
		return r, fmt.Errorf("reading run log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var e runner.Event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // a line cut short by a crash
		}
		switch e.Type {
		case runner.EventRunStart:
			r.Started, r.Playbook, r.File, r.DryRun = e.Time, e.Playbook, e.File, e.DryRun
		case runner.EventRunEnd:
			r.Outcome = e.Outcome
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return r, fmt.Errorf("reading run log %s: %w", p, err)
	}
	return r, nil
}
