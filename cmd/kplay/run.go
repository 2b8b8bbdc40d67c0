package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kplay/kplay/remote"
	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/steps"
)

// cmdRun implements kplay run and kplay validate.
func cmdRun(ctx, rollbackCtx context.Context, args []string, stdout, stderr io.Writer, validateOnly bool) int {
	name := "run"
	if validateOnly {
		name = "validate"
	}
	f, err := parseFlags(name, args, stderr, true, false)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	plan, err := load(f.playbookArg[0], f)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	if validateOnly {
		fmt.Fprintf(stdout, "%s: ok: %s; no host was contacted\n", plan.Playbook.File, plan.Shape())
		return exitOK
	}
	rep, _ := execute(ctx, rollbackCtx, plan, f, stdout, stderr)
	return exitCode(rep)
}

// load reads, validates and compiles a playbook against the inventory.
func load(playbook string, f *commonFlags) (*runner.Plan, error) {
	reg := steps.Builtin()
	inv, err := runner.LoadInventory(f.inventory)
	if err != nil {
		return nil, err
	}
	pb, err := runner.LoadPlaybook(playbook, reg)
	if err != nil {
		return nil, err
	}
	return runner.Compile(pb, inv, runner.CompileOptions{Limit: f.limitList(), Vars: f.vars, Registry: reg})
}

// execute runs a compiled plan and writes the report.
func execute(ctx, rollbackCtx context.Context, plan *runner.Plan, f *commonFlags, stdout, stderr io.Writer) (*runner.Report, error) {
	opts := runner.Options{
		DryRun:         f.dryRun,
		Forks:          f.forks,
		DefaultTimeout: f.timeout.d,
		Dial:           runner.SSHDialer(f.acceptNew, os.Getenv("KPLAY_BECOME_PASSWORD")),
		RollbackCtx:    rollbackCtx,
	}
	if !f.dryRun {
		opts.Lock = &runner.LockOptions{Break: f.breakLock}
	}
	var lw *runner.LineWriter
	if f.output == "text" {
		var progress io.Writer
		if isTerminal(stderr) {
			progress = stderr
		}
		lw = runner.NewLineWriter(stdout, progress, len(plan.Hosts))
		opts.OnStep = lw.Step
		opts.OnRollback = lw.Rollback
		mode := "run"
		if f.dryRun {
			mode = "dry run"
		}
		fmt.Fprintf(stdout, "%s: %s: %s\n", mode, plan.Playbook.Name, plan.Shape())
	}
	rep, err := runner.Run(ctx, plan, opts)
	if left := rep.Unfinished(); len(left) > 0 && !f.dryRun && !rep.Interrupted {
		// Rerunning is safe: renewal renews again, restarts restart only
		// what still runs on old files.
		rep.Resume = remote.QuoteAll("kplay", "run", f.playbookArg[0], "-i", f.inventory, "--limit", strings.Join(left, ","))
	}
	if lw != nil {
		lw.Finish()
		_ = runner.WriteRecap(stdout, rep)
	} else {
		_ = runner.WriteJSON(stdout, rep)
	}
	return rep, err
}

// exitCode maps a report to the process exit code.
func exitCode(rep *runner.Report) int {
	if rep.Interrupted {
		return exitInterrupt
	}
	for _, h := range rep.Hosts {
		if h.Failed() {
			return exitFailed
		}
	}
	return exitOK
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
