package runner

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/inventory"
	"github.com/kplay/kplay/steps"
)

// Plan is a playbook bound to an inventory: the targeted hosts, each play's
// batches, and every step built with each host's variables. Building it
// contacts no host, so every config error is found first.
type Plan struct {
	Playbook  *Playbook
	Inventory *Inventory
	// Hosts are the hosts of every play, in inventory order.
	Hosts []*HostSpec
	// Plays are the plays, bound, in playbook order; a play whose steps
	// the StepFilter all left out is not among them.
	Plays []*PlayPlan
	// Skipped are the steps the StepFilter left out, in playbook order.
	Skipped []SkippedStep
}

// PlayPlan is one play bound to the inventory.
type PlayPlan struct {
	Play *Play
	// Hosts are the play's hosts, in inventory order.
	Hosts []*HostSpec
	// Batches partitions Hosts by serial.
	Batches [][]*HostSpec
	// Steps holds each host's bound steps, in play order.
	Steps map[string][]steps.Step
	// Vars holds each host's resolved variables.
	Vars map[string]*Vars
}

// Shape says in words how many steps, hosts and batches the plan has, per
// play when there are several.
func (p *Plan) Shape() string {
	if len(p.Plays) == 1 {
		pp := p.Plays[0]
		return fmt.Sprintf("%d step(s) on %d host(s) in %d batch(es)", len(pp.Play.Steps), len(pp.Hosts), len(pp.Batches))
	}
	parts := make([]string, len(p.Plays))
	for i, pp := range p.Plays {
		parts[i] = fmt.Sprintf("%s: %d step(s) on %d host(s) in %d batch(es)", pp.Play.Label(i), len(pp.Play.Steps), len(pp.Hosts), len(pp.Batches))
	}
	return fmt.Sprintf("%d plays on %d host(s) (%s)", len(p.Plays), len(p.Hosts), strings.Join(parts, "; "))
}

// CompileOptions are the command-line inputs to compilation.
type CompileOptions struct {
	// Limit restricts the run to these hosts or groups.
	Limit []string
	// Vars are --var values, which win over every other variable.
	Vars map[string]string
	// Registry is the step types; nil means steps.Builtin().
	Registry steps.Registry
	// Steps selects steps by tags and --start-at-step.
	Steps StepFilter
}

// Compile binds pb to inv.
func Compile(pb *Playbook, inv *Inventory, o CompileOptions) (*Plan, error) {
	reg := o.Registry
	if reg == nil {
		reg = steps.Builtin()
	}
	var limit map[string]bool
	if len(o.Limit) > 0 {
		var err error
		if limit, err = resolvePatterns(inv, o.Limit, "--limit", 0, true); err != nil {
			return nil, limitErr(inv, err)
		}
	}
	plays, skipped, err := o.Steps.apply(pb)
	if err != nil {
		return nil, err
	}
	p := &Plan{Playbook: pb, Inventory: inv, Skipped: skipped}
	inAny := map[string]bool{}
	for _, play := range plays {
		pp, err := compilePlay(pb.File, play, inv, limit, o, reg)
		if err != nil {
			return nil, err
		}
		for _, h := range pp.Hosts {
			inAny[h.Name] = true
		}
		p.Plays = append(p.Plays, pp)
	}
	if len(inAny) == 0 {
		var hosts []string
		for _, play := range plays {
			hosts = append(hosts, play.Hosts...)
		}
		return nil, &ConfigError{File: "--limit", Msg: fmt.Sprintf("%s matches none of the playbook's hosts (%s)", strings.Join(o.Limit, ","), strings.Join(hosts, ","))}
	}
	for _, h := range inv.Hosts {
		if inAny[h.Name] {
			p.Hosts = append(p.Hosts, h)
		}
	}
	if err := checkSameMachine(p.Hosts); err != nil {
		return nil, err
	}
	return p, nil
}

// checkSameMachine refuses two targeted hosts with the same address and
// port: the run would lock the machine under one name and then find it
// locked under the other, and would renew and restart it twice.
func checkSameMachine(hosts []*HostSpec) error {
	type endpoint struct {
		addr string
		port int
	}
	seen := map[endpoint]*HostSpec{}
	for _, h := range hosts {
		e := endpoint{strings.ToLower(h.Address), h.Port}
		if first, ok := seen[e]; ok {
			return &ConfigError{File: h.File, Line: h.Line, Key: h.Name,
				Msg: fmt.Sprintf("hosts %q (%s:%d) and %q (%s:%d) are the same machine, %s port %d: target it under one name",
					first.Name, first.File, first.Line, h.Name, h.File, h.Line, h.Address, h.Port)}
		}
		seen[e] = h
	}
	return nil
}

// limitErr positions a --limit error: on the line of a --limit @FILE, or
// on --limit.
func limitErr(inv *Inventory, err error) error {
	var pe *inventory.PatternError
	if errors.As(err, &pe) && pe.Pattern.Line > 0 {
		return &ConfigError{File: pe.Pattern.File, Line: pe.Pattern.Line, Key: "--limit", Msg: patternMsg(inv, err)}
	}
	return &ConfigError{File: "--limit", Msg: patternMsg(inv, err)}
}

// patternMsg says what is wrong with a host pattern, without where it is
// (the ConfigError says that).
func patternMsg(inv *Inventory, err error) string {
	var pe *inventory.PatternError
	switch {
	case !errors.As(err, &pe):
		return err.Error()
	case pe.NoMatch:
		groups := slices.Sorted(maps.Keys(inv.Groups))
		return fmt.Sprintf("unknown host or group %q in %s: the pattern matches no group and no host (groups: %s)", pe.Pattern.Text, inv.File, strings.Join(groups, ", "))
	case pe.Err != nil:
		return fmt.Sprintf("host pattern %q %s: %v", pe.Pattern.Text, pe.Msg, pe.Err)
	}
	return fmt.Sprintf("host pattern %q %s", pe.Pattern.Text, pe.Msg)
}

// compilePlay binds one play: its hosts (within limit, if any), batches and steps.
func compilePlay(file string, play *Play, inv *Inventory, limit map[string]bool, o CompileOptions, reg steps.Registry) (*PlayPlan, error) {
	targets, err := resolvePatterns(inv, play.Hosts, file, play.hostsLine, false)
	if err != nil {
		return nil, &ConfigError{File: file, Line: play.hostsLine, Key: play.key + "hosts", Msg: patternMsg(inv, err)}
	}
	pp := &PlayPlan{Play: play, Steps: map[string][]steps.Step{}, Vars: map[string]*Vars{}}
	for _, h := range inv.Hosts {
		if targets[h.Name] && (limit == nil || limit[h.Name]) {
			pp.Hosts = append(pp.Hosts, h)
		}
	}
	for _, h := range pp.Hosts {
		v := hostVars(play, h, o.Vars)
		pp.Vars[h.Name] = v
		for _, se := range play.Steps {
			st, err := reg[se.Type](se.Params, v)
			if err != nil {
				return nil, stepConfigErr(file, se, h.Name, err)
			}
			pp.Steps[h.Name] = append(pp.Steps[h.Name], st)
		}
	}
	size := play.Serial.Size(len(pp.Hosts))
	for i := 0; i < len(pp.Hosts); i += size {
		pp.Batches = append(pp.Batches, pp.Hosts[i:min(i+size, len(pp.Hosts))])
	}
	return pp, nil
}

// stepConfigErr positions a step factory's error in the playbook.
func stepConfigErr(file string, se *StepEntry, host string, err error) error {
	prefix := se.Key
	if ye, ok := err.(*yamlx.Error); ok {
		key := ye.Key
		if !strings.HasPrefix(key, prefix) {
			key = prefix + "." + key
		}
		line := ye.Line
		if line == 0 {
			line = se.Line
		}
		return &ConfigError{File: file, Line: line, Key: key, Msg: ye.Msg + " (for host " + host + ")"}
	}
	return &ConfigError{File: file, Line: se.Line, Key: prefix + "." + se.Type, Msg: err.Error() + " (for host " + host + ")"}
}

// hostVars layers variables, lowest precedence first: the host's inventory
// variables (already merged as Ansible merges them), play vars, --var, and
// the built-ins host.name and host.address.
func hostVars(pb *Play, h *HostSpec, cli map[string]string) *Vars {
	v := NewVars(h.Vars, pb.Vars, cli, map[string]string{"host.name": h.Name, "host.address": h.Address})
	for name, where := range h.Structured {
		if _, set := v.m[name]; !set {
			v.structured(name, where)
		}
	}
	return v
}

// resolvePatterns returns the names of the hosts Ansible host patterns
// select (globs, ~regex, groups, unions, :& intersections, :! exclusions,
// [N] subscripts). Each entry of patterns is split as Ansible splits a
// hosts: or --limit value; with atFiles, @FILE stands for FILE's lines.
// file and line say where the patterns were written.
func resolvePatterns(inv *Inventory, patterns []string, file string, line int, atFiles bool) (map[string]bool, error) {
	var pats []inventory.Pattern
	for _, entry := range patterns {
		if atFiles {
			ps, err := inventory.LimitPatterns(entry)
			if err != nil {
				return nil, err
			}
			pats = append(pats, ps...)
			continue
		}
		for _, p := range inventory.SplitHostPattern(entry) {
			pats = append(pats, inventory.Pattern{Text: p, File: file, Line: line})
		}
	}
	hosts, err := inv.src.Select(pats)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, h := range hosts {
		out[h.Name] = true
	}
	return out, nil
}
