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

	"github.com/kplay/kplay/internal/certreport"
	"github.com/kplay/kplay/internal/shellquote"
	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/playbooks"
	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/steps"
)

// checkThresholds explains the exit codes in the JSON document.
const checkThresholds = "exit 3 when a certificate expires before checked_at + within, even if a host could not be checked; " +
	"exit 1 when nothing does and a host could not be checked"

// cmdCheck implements kplay check: the shipped check playbook as a CI gate.
// Exit 0: nothing expires within --within; 3: something does (whether or
// not every host could be checked); 1: nothing does, but a host could not
// be checked; 2: bad input; 130: interrupted.
func cmdCheck(ctx, rollbackCtx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags("check", args, stdout, stderr, false, true)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	c, code := newChecker(ctx, f, stderr)
	if c == nil {
		return code
	}
	defer c.ssh.Close()
	if f.serve != "" {
		return serveMetrics(ctx, rollbackCtx, c, stderr)
	}
	rep, err := c.run(ctx, rollbackCtx)
	if rep == nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitFailed
	}
	// Each host's error is also in rep: summarise reports it (NOT CHECKED).
	out, all, expiring := summarise(rep, time.Now(), f.within.d, f.inventory)
	return writeCheck(f, out, all, expiring, stdout, stderr)
}

// checker runs the built-in check playbook, once or (--serve) again and
// again, over the same SSH settings and bastion connections.
type checker struct {
	f    *commonFlags
	plan *runner.Plan
	ssh  *runner.SSH
}

// newChecker loads the inventory and resolves every host's SSH settings,
// contacting no host; on failure it returns nil and the exit code.
func newChecker(ctx context.Context, f *commonFlags, stderr io.Writer) (*checker, int) {
	plan, err := whileLoading(ctx, func() (*runner.Plan, error) { return checkPlan(f) })
	if errors.Is(err, errInterruptedLoading) {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return nil, exitInterrupt
	}
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return nil, exitUsage
	}
	becomePass, err := becomePassword(f, os.Stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return nil, exitUsage
	}
	ssh, err := runner.NewSSH(plan, runner.SSHOptions{AcceptNew: f.acceptNew, BecomePassword: becomePass, ConfigFile: f.sshConfig})
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return nil, exitUsage
	}
	return &checker{f: f, plan: plan, ssh: ssh}, exitOK
}

// run checks every host once.
func (c *checker) run(ctx, rollbackCtx context.Context) (*runner.Report, error) {
	return runner.Run(ctx, c.plan, runner.Options{
		Forks:          c.f.forks,
		DefaultTimeout: c.f.timeout.d,
		Dial:           c.ssh.Dialer(),
		RollbackCtx:    rollbackCtx,
	})
}

// checkPlan compiles the built-in check playbook against the inventory: on
// the control_plane group, or on --limit (any hosts or groups) when given.
func checkPlan(f *commonFlags) (*runner.Plan, error) {
	src, err := playbooks.FS.ReadFile("check.yaml")
	if err != nil {
		return nil, fmt.Errorf("built-in check.yaml: %w", err)
	}
	reg := steps.Builtin()
	inv, err := runner.LoadInventoryWith(f.connDefaults(), f.inventories...)
	if err != nil {
		return nil, err
	}
	pb, err := runner.ParsePlaybook("check.yaml (built in)", src, reg)
	if err != nil {
		return nil, err
	}
	if _, ok := inv.Groups["control_plane"]; !ok && len(f.limitList()) == 0 {
		return nil, fmt.Errorf("%s: no control_plane group: add one listing the control-plane hosts, or pass --limit HOSTS", inv.File)
	}
	if len(f.limitList()) > 0 {
		pb.Plays[0].Hosts = []string{"all"}
	}
	return runner.Compile(pb, inv, runner.CompileOptions{Limit: f.limitList(), Vars: f.vars, Registry: reg})
}

// summarise turns a check run into the check's JSON document, with the
// ages of the certificates as of now, every certificate found, and those
// that expire before now+within (soonest first, the expired ones included).
func summarise(rep *runner.Report, now time.Time, within time.Duration, inventory string) (out certreport.Report, all, expiring steps.CertList) {
	out = certreport.Report{SchemaVersion: certreport.SchemaVersion, Within: yamlx.Duration(within).String(), CheckedAt: now.UTC(),
		RunID: rep.RunID, Thresholds: checkThresholds, Unchecked: []string{}}
	for _, h := range rep.Hosts {
		var certs steps.CertList
		for _, s := range h.Steps {
			if l, ok := s.Data.(steps.CertList); ok {
				for _, c := range l {
					c.Host = h.Name
					certs = append(certs, c)
				}
			}
		}
		certs.SetAge(now)
		certs.SortByExpiry()
		all = append(all, certs...)
		if h.Failed() || len(certs) == 0 {
			out.Unchecked = append(out.Unchecked, h.Name)
		}
		out.Hosts = append(out.Hosts, certreport.Host{Name: h.Name, Status: string(h.Status), Error: h.Error,
			Certificates: certreport.NewCerts(certs, now, within)})
	}
	expiring = all.Expiring(now, within)
	out.Expiring = len(expiring)
	for _, c := range expiring {
		if c.Expired {
			out.Expired++
		}
	}
	out.ExitCode = checkExitCode(rep.Interrupted, len(out.Unchecked), out.Expiring)
	if out.ExitCode == exitExpiring {
		out.Renew = renewCommand(inventory)
	}
	return out, all, expiring
}

// checkExitCode decides kplay check's exit status. An expiring certificate
// wins over a host that could not be checked: the unchecked host cannot
// make the expiry any less true, and hiding it behind exit 1 would lose it.
func checkExitCode(interrupted bool, unchecked, expiring int) int {
	switch {
	case interrupted:
		return exitInterrupt
	case expiring > 0:
		return exitExpiring
	case unchecked > 0:
		return exitFailed
	}
	return exitOK
}

// renewCommand is the command that renews the certificates of the inventory.
func renewCommand(inventory string) string {
	return "kplay run playbooks/renew.yaml -i " + shellquote.Quote(inventory)
}

// renewOrder says in what order the renewal playbook works.
const renewOrder = "it renews every control-plane host first, then restarts the control plane host by host"

// checkVerdict is the text summary under the table: what expired and how
// to recover, what expires within the window, which hosts were not checked.
func checkVerdict(out certreport.Report, expiring steps.CertList) []string {
	switch out.ExitCode {
	case exitInterrupt:
		return []string{"INTERRUPTED: the check stopped before every host was checked"}
	case exitOK:
		return []string{fmt.Sprintf("OK: no certificate expires within %s", out.Within)}
	case exitFailed:
		line := fmt.Sprintf("FAIL: %d host(s) could not be checked: %s", len(out.Unchecked), strings.Join(out.Unchecked, ", "))
		if checked := len(out.Hosts) - len(out.Unchecked); checked > 0 {
			line += fmt.Sprintf("; on the %d checked host(s) no certificate expires within %s", checked, out.Within)
		}
		return []string{line}
	}
	lines := expiredLines(expiring, out.Renew)
	first := expiring[0]
	soonest := fmt.Sprintf("soonest: %s on %s, %s", first.Name, first.Host, first.NotAfter.UTC().Format(time.RFC3339))
	if out.Expired > 0 {
		lines = append(lines, fmt.Sprintf("FAIL: %d certificate(s) expire within %s, %d of them already expired; %s (renew: %s)",
			out.Expiring, out.Within, out.Expired, soonest, out.Renew))
	} else {
		lines = append(lines, fmt.Sprintf("FAIL: %d certificate(s) expire within %s; %s (renew: %s)", out.Expiring, out.Within, soonest, out.Renew))
	}
	if len(out.Unchecked) > 0 {
		lines = append(lines, fmt.Sprintf("NOT CHECKED: %d host(s): %s; the count above covers the other %d host(s) only",
			len(out.Unchecked), strings.Join(out.Unchecked, ", "), len(out.Hosts)-len(out.Unchecked)))
	}
	return lines
}

// expiredLines says plainly what has already expired and the command that
// recovers the cluster; nothing when nothing has expired.
func expiredLines(expiring steps.CertList, renew string) []string {
	var control, kubelet steps.CertList
	for _, c := range expiring {
		switch {
		case !c.Expired:
		case c.Kind == steps.KindKubelet:
			kubelet = append(kubelet, c)
		default:
			control = append(control, c)
		}
	}
	var lines []string
	if len(control) > 0 {
		c := control[0]
		lines = append(lines,
			fmt.Sprintf("EXPIRED: %d certificate(s) have already expired (the first: %s on %s, %s); new TLS connections that use them fail (x509: certificate has expired).",
				len(control), c.Name, c.Host, c.DaysLeftText()),
			"To recover the cluster, run: "+renew,
			"  ("+renewOrder+")")
	}
	if len(kubelet) > 0 {
		age := kubelet[0].DaysLeftText()
		if len(kubelet) > 1 {
			age = "the first " + age
		}
		what := fmt.Sprintf("EXPIRED: kubelet's client certificate on %s (%s): kubelet's own rotation failed", hostNames(kubelet), age)
		if len(control) > 0 {
			lines = append(lines, what+"; the same command recovers it (its renew_kubelet_client step).")
		} else {
			lines = append(lines, what+". The same command that renews the control plane recovers it (its renew_kubelet_client step): "+renew,
				"  ("+renewOrder+")")
		}
	}
	return lines
}

// hostNames lists the distinct hosts of certs, comma-separated, in order.
func hostNames(certs steps.CertList) string {
	var names []string
	seen := map[string]bool{}
	for _, c := range certs {
		if !seen[c.Host] {
			seen[c.Host] = true
			names = append(names, c.Host)
		}
	}
	return strings.Join(names, ", ")
}
