package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/kplay/kplay/internal/runlog"
)

// cmdRuns implements kplay runs: the recent runs recorded on this
// controller, newest first (id, start time, playbook, outcome, log file).
func cmdRuns(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs, n := runsFlagSet()
	if err := parseOrHelp(fs, runsSynopsis, args, stdout, stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || *n < 0 {
		fmt.Fprintf(stderr, "kplay: usage: kplay runs [-n N]\n")
		return exitUsage
	}
	dir, err := runlog.Dir(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitFailed
	}
	runs, err := runlog.List(dir, *n)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitFailed
	}
	if len(runs) == 0 {
		fmt.Fprintf(stdout, "no runs recorded in %s\n", dir)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN ID\tSTARTED\tPLAYBOOK\tOUTCOME\tLOG")
	for _, r := range runs {
		started, outcome := "-", r.Outcome
		if !r.Started.IsZero() {
			started = r.Started.Local().Format(time.DateTime)
		}
		if r.DryRun {
			outcome += " (dry run)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, started, r.File, outcome, r.Path)
	}
	if err := tw.Flush(); err != nil {
		return exitFailed
	}
	return exitOK
}
