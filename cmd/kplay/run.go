package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/kplay/kplay/internal/runlog"
	"github.com/kplay/kplay/internal/shellquote"
	"github.com/kplay/kplay/internal/ttyprompt"
	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/steps"
)

// cmdRun implements kplay run and kplay validate.
func cmdRun(ctx, rollbackCtx context.Context, args []string, stdout, stderr io.Writer, validateOnly bool) int {
	name := "run"
	if validateOnly {
		name = "validate"
	}
	f, err := parseFlags(name, args, stdout, stderr, true, false)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	plan, err := whileLoading(ctx, func() (*runner.Plan, error) { return load(f.playbookArg[0], f) })
	if errors.Is(err, errInterruptedLoading) {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitInterrupt
	}
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	if f.listHosts || f.listSteps {
		if err := runner.WriteListing(stdout, plan, f.listHosts, f.listSteps); err != nil {
			return exitFailed
		}
		return exitOK
	}
	if validateOnly {
		// The hosts' ssh_config files and bastions are part of the input.
		ssh, err := runner.NewSSH(plan, runner.SSHOptions{ConfigFile: f.sshConfig})
		if err != nil {
			fmt.Fprintf(stderr, "kplay: %v\n", err)
			return exitUsage
		}
		ssh.Close()
		fmt.Fprintf(stdout, "%s: ok: %s; no host was contacted\n", plan.Playbook.File, plan.Shape())
		return exitOK
	}
	becomePass, err := becomePassword(f, os.Stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	ssh, err := runner.NewSSH(plan, runner.SSHOptions{AcceptNew: f.acceptNew, BecomePassword: becomePass, ConfigFile: f.sshConfig, DryRun: f.dryRun})
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	defer ssh.Close()
	rep, err := execute(ctx, rollbackCtx, plan, ssh.Dialer(), f, stdout, stderr)
	if rep == nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitFailed
	}
	if f.output == "text" {
		writeHostErrors(stderr, err)
	}
	return exitCode(rep, err)
}

// errInterruptedLoading is a signal that came while the inventory and
// playbook were being read: nothing was contacted.
var errInterruptedLoading = errors.New("interrupted while loading the inventory and playbook: no host was contacted, nothing was changed")

// whileLoading runs load, returning early with errInterruptedLoading when ctx
// is cancelled first (SIGINT, SIGTERM): loading touches no host, so it is
// simply abandoned.
func whileLoading(ctx context.Context, load func() (*runner.Plan, error)) (*runner.Plan, error) {
	type result struct {
		plan *runner.Plan
		err  error
	}
	done := make(chan result, 1)
	go func() {
		p, err := load()
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		return r.plan, r.err
	case <-ctx.Done():
		return nil, errInterruptedLoading
	}
}

// load reads, validates and compiles a playbook against the inventory.
func load(playbook string, f *commonFlags) (*runner.Plan, error) {
	reg := steps.Builtin()
	inv, err := runner.LoadInventoryWith(f.connDefaults(), f.inventories...)
	if err != nil {
		return nil, err
	}
	pb, err := runner.LoadPlaybook(playbook, reg)
	if err != nil {
		return nil, err
	}
	return runner.Compile(pb, inv, runner.CompileOptions{Limit: f.limitList(), Vars: f.vars, Registry: reg,
		Steps: runner.StepFilter{Tags: f.tags, SkipTags: f.skipTags, StartAt: f.startAt}})
}

// becomePassword is the sudo password: prompted for on the terminal
// without echo with -K, else KPLAY_BECOME_PASSWORD. It never comes from
// argv, where other users could read it.
func becomePassword(f *commonFlags, stdin *os.File, stderr io.Writer) (string, error) {
	if !f.askBecome {
		return os.Getenv("KPLAY_BECOME_PASSWORD"), nil
	}
	if !term.IsTerminal(int(stdin.Fd())) {
		return "", errors.New("-K (--ask-become-pass) needs a terminal to prompt on; set KPLAY_BECOME_PASSWORD instead")
	}
	pw, err := ttyprompt.ReadSecret(stdin, stderr, "BECOME password: ")
	if err != nil {
		return "", fmt.Errorf("-K: reading the password: %w", err)
	}
	return string(pw), nil
}

// resumeCommand is the command that finishes the run on the hosts left:
// the same playbook, inventories, step selection and connection flags,
// limited to those hosts. Variables given with -e or --var are not
// repeated (they may hold secrets, and the command is printed and logged):
// a note says to add them again.
func resumeCommand(f *commonFlags, left []string) string {
	args := []string{"kplay", "run", f.playbookArg[0]}
	for _, src := range f.inventories {
		args = append(args, "-i", src)
	}
	for _, t := range f.tags {
		args = append(args, "--tags", t)
	}
	for _, t := range f.skipTags {
		args = append(args, "--skip-tags", t)
	}
	for _, kv := range [][2]string{{"--start-at-step", f.startAt}, {"--ssh-config", f.sshConfig}, {"--user", f.user}, {"--private-key", f.privateKey}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	if f.become {
		args = append(args, "--become")
	}
	cmd := shellquote.QuoteAll(append(args, "--limit", strings.Join(left, ","))...)
	if len(f.extraVars) > 0 || len(f.vars) > 0 {
		cmd += " (and the same -e/--var values as this run)"
	}
	return cmd
}

// execute runs a compiled plan and writes the report.
func execute(ctx, rollbackCtx context.Context, plan *runner.Plan, dial runner.Dialer, f *commonFlags, stdout, stderr io.Writer) (*runner.Report, error) {
	opts := runner.Options{
		DryRun:         f.dryRun,
		Forks:          f.forks,
		DefaultTimeout: f.timeout.d,
		Dial:           dial,
		RollbackCtx:    rollbackCtx,
		RunID:          runner.NewRunID(time.Now()),
	}
	if !f.dryRun {
		opts.Lock = &runner.LockOptions{Break: f.breakLock}
	}
	if log := openRunLog(opts.RunID, stderr); log != nil {
		opts.Events = log
		defer closeRunLog(log, stderr)
	}
	var lw *runner.LineWriter
	if f.output == "text" {
		progress, color := progressTo(stderr, os.Getenv)
		lw = runner.NewLineWriter(stdout, progress, len(plan.Hosts))
		lw.Verbose, lw.Color = f.verbose(), color
		opts.OnStep = lw.Step
		opts.OnRollback = lw.Rollback
		mode := "run"
		if f.dryRun {
			mode = "dry run"
		}
		fmt.Fprintf(stdout, "%s: %s: %s\n", mode, plan.Playbook.Name, plan.Shape())
	}
	rep, err := runner.Run(ctx, plan, opts)
	if rep == nil {
		return nil, err
	}
	if left := rep.Unfinished(); len(left) > 0 && !f.dryRun && !rep.Interrupted {
		// Rerunning is safe: renewal renews again, restarts restart only
		// what still runs on old files.
		rep.Resume = resumeCommand(f, left)
	}
	if lw != nil {
		lw.Finish()
		_ = runner.WriteRecap(stdout, rep)
	} else {
		_ = runner.WriteJSON(stdout, rep)
	}
	return rep, err
}

// exitCode maps a run to the process exit code. runErr is runner.Run's
// aggregated error, non-nil exactly when a host failed.
func exitCode(rep *runner.Report, runErr error) int {
	switch {
	case rep.Interrupted:
		return exitInterrupt
	case runErr != nil:
		return exitFailed
	}
	return exitOK
}

// writeHostErrors writes runner.Run's aggregated error to w, one line per
// host error (host, step, exit status and stderr tail), so that a failed run
// says why on stderr as well as in the recap.
func writeHostErrors(w io.Writer, runErr error) {
	for _, e := range hostErrors(runErr) {
		fmt.Fprintf(w, "kplay: %s\n", strings.ReplaceAll(strings.TrimSpace(e.Error()), "\n", " | "))
	}
}

// hostErrors splits runner.Run's aggregated error into its host errors.
func hostErrors(runErr error) []error {
	if runErr == nil {
		return nil
	}
	var m interface{ WrappedErrors() []error }
	if errors.As(runErr, &m) {
		return m.WrappedErrors()
	}
	return []error{runErr}
}

// progressTo decides where the live progress line goes: to stderr only
// when it is a terminal (golang.org/x/term) that understands cursor
// control, i.e. TERM is set and not "dumb"; nowhere otherwise, so CI logs
// and pipes get plain lines. color is false when NO_COLOR is set to
// anything (no-color.org).
func progressTo(stderr io.Writer, getenv func(string) string) (progress io.Writer, color bool) {
	f, ok := stderr.(interface{ Fd() uintptr })
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, false
	}
	live, color := progressEnv(getenv)
	if !live {
		return nil, false
	}
	return stderr, color
}

// progressEnv decides, for a terminal, whether a live line is possible
// (TERM set and not "dumb") and whether colour is wanted (NO_COLOR unset).
func progressEnv(getenv func(string) string) (live, color bool) {
	if t := getenv("TERM"); t == "" || t == "dumb" {
		return false, false
	}
	return true, getenv("NO_COLOR") == ""
}

// openRunLog creates the run's log under the state directory. A log that
// cannot be created is reported on stderr and the run goes on without one:
// the record must not stop a renewal.
func openRunLog(runID string, stderr io.Writer) *runlog.Log {
	dir, err := runlog.Dir(os.Getenv)
	if err == nil {
		var log *runlog.Log
		if log, err = runlog.Create(dir, runID); err == nil {
			return log
		}
	}
	fmt.Fprintf(stderr, "kplay: %v (the run goes on without a run log)\n", err)
	return nil
}

// closeRunLog closes the run log and says where it is.
func closeRunLog(log *runlog.Log, stderr io.Writer) {
	if err := log.Close(); err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return
	}
	fmt.Fprintf(stderr, "kplay: run log: %s\n", log.Path())
}
