package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// StepLine formats one finished step as a single line: host, step, status,
// duration, and on failure the error (exit status and stderr tail).
func StepLine(h *HostReport, s *StepReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %-24s %-11s %7s", h.Name, s.Name, s.Status, fmtDur(s.Duration))
	switch {
	case s.Error != "":
		b.WriteString("  " + oneLine(s.Error))
	case s.Message != "":
		b.WriteString("  " + oneLine(s.Message))
	}
	if s.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", s.Attempts)
	}
	for _, d := range s.Details {
		b.WriteString("\n" + strings.Repeat(" ", 13) + "  " + d)
	}
	return b.String()
}

// RollbackLine formats one undo as a line.
func RollbackLine(h *HostReport, s *StepReport) string {
	return fmt.Sprintf("%-12s %-24s %-11s  %s", h.Name, s.Name, "rollback", oneLine(s.Rollback))
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.ReplaceAll(s, "\n", " | ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}

// WriteRecap writes the per-host recap table, like Ansible's PLAY RECAP,
// followed by each failed host's error, state and restore hints.
func WriteRecap(w io.Writer, rep *Report) error {
	var b strings.Builder
	title := "RECAP"
	if rep.DryRun {
		title = "RECAP (dry run: nothing was changed)"
	}
	fmt.Fprintf(&b, "\n%s %s  run %s  %s\n", title, rep.Playbook, rep.RunID, fmtDur(rep.Duration))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATUS\tOK\tCHANGED\tFAILED\tSKIPPED\tROLLED BACK\tNOT RUN\tSTATE")
	for _, h := range rep.Hosts {
		t := h.Totals
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", h.Name, h.Status, t.OK, t.Changed, t.Failed, t.Skipped, t.RolledBack, t.NotRun, h.State)
	}
	tw.Flush()
	writeSkipped(&b, rep.Skipped)
	for _, h := range rep.Hosts {
		if h.Error == "" && len(h.Restore) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s: %s\n", h.Name, oneLine(h.Error))
		for _, r := range h.Restore {
			fmt.Fprintf(&b, "  restore by hand: %s\n", r)
		}
	}
	if nothingDone(rep) {
		b.WriteString("\nnothing to do: every step on every host found nothing to change\n")
	}
	if rep.Stopped != "" {
		fmt.Fprintf(&b, "\nstopped: %s\n", rep.Stopped)
	}
	if rep.Resume != "" {
		fmt.Fprintf(&b, "to finish, once the cause is fixed: %s\n", rep.Resume)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// nothingDone says a real run finished on every host without a failure and
// without changing anything: a scheduled run with nothing due.
func nothingDone(rep *Report) bool {
	if rep.DryRun || rep.Stopped != "" || len(rep.Hosts) == 0 {
		return false
	}
	for _, h := range rep.Hosts {
		t := h.Totals
		if t.Changed > 0 || t.Failed > 0 || t.RolledBack > 0 || t.NotRun > 0 || h.Error != "" {
			return false
		}
	}
	return true
}

// writeSkipped lists the steps left out by --tags, --skip-tags or
// --start-at-step, one line each.
func writeSkipped(b *strings.Builder, skipped []SkippedStep) {
	for _, s := range skipped {
		by := "by tags"
		if s.Why != "tags" {
			by = "by --" + s.Why
		}
		fmt.Fprintf(b, "skipped %s: %s: %s%s\n", by, s.Play, stepTitle(s.Name, s.Type), tagSuffix(s.Tags))
	}
}

// tagSuffix is " [tags: a, b]", or "" without tags.
func tagSuffix(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return " [tags: " + strings.Join(tags, ", ") + "]"
}

// ReportSchemaVersion is the schema_version of the run report's JSON,
// documented by docs/schema/run.v1.json. It changes only when a field
// changes meaning or goes away; fields may be added within a version.
const ReportSchemaVersion = 1

// WriteJSON writes the report as one JSON document, schema_version first.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		SchemaVersion int `json:"schema_version"`
		*Report
	}{ReportSchemaVersion, rep})
}

// LineWriter serialises lines from many goroutines onto one writer, and on
// a terminal keeps a live progress line below them.
type LineWriter struct {
	// Verbose shows each step's full command output under its line.
	Verbose bool
	// Color makes the progress counter bold (off under NO_COLOR).
	Color    bool
	mu       sync.Mutex
	w        io.Writer
	progress io.Writer // nil when not a terminal
	total    int
	done     map[string]bool
	last     string
}

// NewLineWriter writes lines to w; if progress is non-nil (a terminal), a
// live "hosts done" line is kept on it.
func NewLineWriter(w, progress io.Writer, totalHosts int) *LineWriter {
	return &LineWriter{w: w, progress: progress, total: totalHosts, done: map[string]bool{}}
}

// Step prints one finished step.
func (l *LineWriter) Step(h *HostReport, s *StepReport) {
	line := StepLine(h, s)
	if l.Verbose && s.Output != "" {
		line += "\n" + indent(s.Output)
	}
	l.print(line, h, s)
}

// indent prefixes every line of out, trailing newline dropped, to set
// command output apart from the step lines.
func indent(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return "    | " + strings.Join(lines, "\n    | ")
}

// Rollback prints one finished undo.
func (l *LineWriter) Rollback(h *HostReport, s *StepReport) {
	l.print(RollbackLine(h, s), h, s)
}

func (l *LineWriter) print(line string, h *HostReport, s *StepReport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.progress != nil {
		fmt.Fprint(l.progress, "\r\033[K")
	}
	fmt.Fprintln(l.w, line)
	if s.Status == StatusFailed || s.Index == len(h.Steps)-1 {
		l.done[h.Name] = true
	}
	if l.progress != nil {
		counter := fmt.Sprintf("[%d/%d hosts done]", len(l.done), l.total)
		if l.Color {
			counter = "\033[1m" + counter + "\033[0m"
		}
		l.last = counter + " " + h.Name + ": " + s.Name
		fmt.Fprint(l.progress, l.last)
	}
}

// Finish clears the progress line.
func (l *LineWriter) Finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.progress != nil && l.last != "" {
		fmt.Fprint(l.progress, "\r\033[K")
	}
}
