// Command kplay runs YAML playbooks over SSH on kubeadm clusters: it renews
// control-plane certificates safely, one node at a time, and warns before
// they expire.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitExpiring  = 3
	exitInterrupt = 130
)

func main() {
	ctx, rollbackCtx, stop := interrupts()
	stopProfile := startProfile(os.Getenv("KPLAY_CPUPROFILE"), os.Stderr)
	stopMemStats := startMemStats(os.Getenv("KPLAY_MEMSTATS"), os.Getenv("KPLAY_MEMPROFILE"), os.Stderr)
	code := runCLI(ctx, rollbackCtx, os.Args[1:], os.Stdout, os.Stderr)
	stopMemStats()
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile (go tool pprof) to path, if not empty,
// until the returned function is called. For performance work: the
// benchmark (make bench) uses it; users never need it.
func startProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: KPLAY_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "kplay: KPLAY_CPUPROFILE: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "kplay: KPLAY_CPUPROFILE: %v\n", err)
		}
	}
}

// interrupts returns a context cancelled by the first SIGINT or SIGTERM, and
// a rollback context cancelled by the second, so a user can abort a rollback.
func interrupts() (run, rollback context.Context, stop func()) {
	run, cancelRun := context.WithCancelCause(context.Background())
	rollback, cancelRollback := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case s := <-sig:
				n++
				if n == 1 {
					fmt.Fprintf(os.Stderr, "\nkplay: %s: stopping: nothing new starts, running commands are cancelled, and hosts already changed are rolled back (%s again aborts a rollback)\n", s, s)
					cancelRun(fmt.Errorf("interrupted by %s", s))
				} else {
					fmt.Fprintf(os.Stderr, "\nkplay: %s again: aborting rollback\n", s)
					cancelRollback()
				}
			case <-done:
				return
			}
		}
	}()
	return run, rollback, func() {
		signal.Stop(sig)
		close(done)
		cancelRun(nil)
		cancelRollback()
	}
}

const usage = `kplay runs YAML playbooks over SSH, in parallel, with rollback.

Usage:
  kplay run PLAYBOOK -i INVENTORY [flags]     run a playbook
  kplay validate PLAYBOOK -i INVENTORY        check everything that needs no host
  kplay check -i INVENTORY [--within 30d]     CI gate: exit 3 if a certificate expires soon
  kplay runs [-n 20]                          recent runs recorded on this controller
  kplay inventory -i INVENTORY --list         show the inventory as ansible-inventory does (--graph, --host NAME)
  kplay completion bash|zsh|fish              print a shell completion script
  kplay version                               print the version

Targets and steps, as with ansible-playbook:
  -l, --limit PATTERN        Ansible host patterns: cp*, web:&prod, all:!cp2, ~regex, @FILE
  --list-hosts, --list-steps print each play's hosts or steps (with tags) and exit
  -t, --tags / --skip-tags   run or leave out steps by tag; --start-at-step NAME
  -e, --extra-vars           key=value, JSON, or @FILE; -C dry run; -u -b -K --private-key -f -v

Exit codes: 0 ok, 1 a host failed, 2 bad input, 3 (check) expiring, 130 interrupted.
Run 'kplay COMMAND --help' for a command's flags.
`

// runCLI runs one kplay command and returns the exit code.
func runCLI(ctx, rollbackCtx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, rollbackCtx, args[1:], stdout, stderr, false)
	case "validate":
		return cmdRun(ctx, rollbackCtx, args[1:], stdout, stderr, true)
	case "check":
		return cmdCheck(ctx, rollbackCtx, args[1:], stdout, stderr)
	case "runs":
		return cmdRuns(args[1:], os.Getenv, stdout, stderr)
	case "inventory":
		return cmdInventory(args[1:], stdout, stderr)
	case "completion":
		return cmdCompletion(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "kplay %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "kplay: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
