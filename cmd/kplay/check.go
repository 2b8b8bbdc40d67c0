package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/playbooks"
	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/steps"
)

// checkJSON is the JSON document of kplay check.
type checkJSON struct {
	Within     string          `json:"within"`
	CheckedAt  time.Time       `json:"checked_at"`
	Expiring   int             `json:"expiring"`
	ExitCode   int             `json:"exit_code"`
	Hosts      []checkHostJSON `json:"hosts"`
	RunID      string          `json:"run_id"`
	Unchecked  []string        `json:"unchecked,omitempty"`
	Thresholds string          `json:"thresholds"`
}

// checkHostJSON is one host in kplay check's JSON.
type checkHostJSON struct {
	Name         string         `json:"name"`
	Status       string         `json:"status"`
	Error        string         `json:"error,omitempty"`
	Certificates steps.CertList `json:"certificates"`
}

// cmdCheck implements kplay check: the shipped check playbook as a CI gate.
// Exit 0: nothing expires within --within; 3: something does; 1: a host
// could not be checked; 2: bad input.
func cmdCheck(ctx, rollbackCtx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags("check", args, stderr, false, true)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	src, err := playbooks.FS.ReadFile("check.yaml")
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitFailed
	}
	reg := steps.Builtin()
	inv, err := runner.LoadInventory(f.inventory)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	pb, err := runner.ParsePlaybook("check.yaml (built in)", src, reg)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	if _, ok := inv.Groups["control_plane"]; !ok && len(f.limitList()) == 0 {
		fmt.Fprintf(stderr, "kplay: %s: no control_plane group: add one listing the control-plane hosts, or pass --limit HOSTS\n", inv.File)
		return exitUsage
	}
	if len(f.limitList()) > 0 {
		pb.Hosts = []string{"all"}
	}
	plan, err := runner.Compile(pb, inv, runner.CompileOptions{Limit: f.limitList(), Vars: f.vars, Registry: reg})
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	opts := runner.Options{
		Forks:          f.forks,
		DefaultTimeout: f.timeout.d,
		Dial:           runner.SSHDialer(f.acceptNew, ""),
		RollbackCtx:    rollbackCtx,
	}
	rep, _ := runner.Run(ctx, plan, opts)
	now := time.Now()
	out := checkJSON{Within: yamlx.Duration(f.within.d).String(), CheckedAt: now.UTC(), RunID: rep.RunID,
		Thresholds: "exit 3 when a certificate expires before checked_at + within"}
	var all steps.CertList
	for _, h := range rep.Hosts {
		hj := checkHostJSON{Name: h.Name, Status: h.Status, Error: h.Error, Certificates: steps.CertList{}}
		for _, s := range h.Steps {
			if l, ok := s.Data.(steps.CertList); ok {
				for _, c := range l {
					c.Host = h.Name
					hj.Certificates = append(hj.Certificates, c)
				}
			}
		}
		hj.Certificates.SortByExpiry()
		all = append(all, hj.Certificates...)
		if h.Failed() || len(hj.Certificates) == 0 {
			out.Unchecked = append(out.Unchecked, h.Name)
		}
		out.Hosts = append(out.Hosts, hj)
	}
	expiring := all.Expiring(now, f.within.d)
	out.Expiring = len(expiring)
	switch {
	case rep.Interrupted:
		out.ExitCode = exitInterrupt
	case len(out.Unchecked) > 0:
		out.ExitCode = exitFailed
	case len(expiring) > 0:
		out.ExitCode = exitExpiring
	default:
		out.ExitCode = exitOK
	}
	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return out.ExitCode
	}
	_ = steps.WriteCertTable(stdout, all, true)
	fmt.Fprintln(stdout)
	for _, h := range out.Hosts {
		if h.Error != "" {
			fmt.Fprintf(stdout, "%s: NOT CHECKED: %s\n", h.Name, h.Error)
		}
	}
	switch out.ExitCode {
	case exitExpiring:
		fmt.Fprintf(stdout, "FAIL: %d certificate(s) expire within %s; soonest: %s on %s, %s (renew: kplay run playbooks/renew.yaml -i %s)\n",
			len(expiring), out.Within, expiring[0].Name, expiring[0].Host, expiring[0].NotAfter.UTC().Format(time.RFC3339), f.inventory)
	case exitFailed:
		fmt.Fprintf(stdout, "FAIL: %d host(s) could not be checked\n", len(out.Unchecked))
	case exitOK:
		fmt.Fprintf(stdout, "OK: no certificate expires within %s\n", out.Within)
	}
	return out.ExitCode
}
