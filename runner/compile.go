package runner

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/steps"
)

// Plan is a playbook bound to an inventory: the targeted hosts, their
// batches, and every step built with each host's variables. Building it
// contacts no host, so every config error is found first.
type Plan struct {
	Playbook  *Playbook
	Inventory *Inventory
	// Hosts are the targeted hosts, in inventory order.
	Hosts []*HostSpec
	// Batches partitions Hosts by serial.
	Batches [][]*HostSpec
	// Steps holds each host's bound steps, in playbook order.
	Steps map[string][]steps.Step
	// Vars holds each host's resolved variables.
	Vars map[string]*Vars
}

// CompileOptions are the command-line inputs to compilation.
type CompileOptions struct {
	// Limit restricts the run to these hosts or groups.
	Limit []string
	// Vars are --var values, which win over every other variable.
	Vars map[string]string
	// Registry is the step types; nil means steps.Builtin().
	Registry steps.Registry
}

// Compile binds pb to inv.
func Compile(pb *Playbook, inv *Inventory, o CompileOptions) (*Plan, error) {
	reg := o.Registry
	if reg == nil {
		reg = steps.Builtin()
	}
	targets, err := resolveNames(inv, pb.Hosts)
	if err != nil {
		return nil, &ConfigError{File: pb.File, Line: pb.hostsLine, Key: "hosts", Msg: err.Error()}
	}
	if len(o.Limit) > 0 {
		limit, err := resolveNames(inv, o.Limit)
		if err != nil {
			return nil, &ConfigError{File: "--limit", Msg: err.Error()}
		}
		var kept []string
		for _, t := range targets {
			if contains(limit, t) {
				kept = append(kept, t)
			}
		}
		if len(kept) == 0 {
			return nil, &ConfigError{File: "--limit", Msg: fmt.Sprintf("%s matches none of the playbook's hosts (%s)", strings.Join(o.Limit, ","), strings.Join(pb.Hosts, ","))}
		}
		targets = kept
	}
	p := &Plan{Playbook: pb, Inventory: inv, Steps: map[string][]steps.Step{}, Vars: map[string]*Vars{}}
	for _, h := range inv.Hosts {
		if contains(targets, h.Name) {
			p.Hosts = append(p.Hosts, h)
		}
	}
	for _, h := range p.Hosts {
		v := hostVars(inv, pb, h, o.Vars)
		p.Vars[h.Name] = v
		for i, se := range pb.Steps {
			st, err := reg[se.Type](se.Params, v)
			if err != nil {
				return nil, stepConfigErr(pb.File, i, se, h.Name, err)
			}
			p.Steps[h.Name] = append(p.Steps[h.Name], st)
		}
	}
	size := pb.Serial.Size(len(p.Hosts))
	for i := 0; i < len(p.Hosts); i += size {
		end := min(i+size, len(p.Hosts))
		p.Batches = append(p.Batches, p.Hosts[i:end])
	}
	return p, nil
}

// stepConfigErr positions a step factory's error in the playbook.
func stepConfigErr(file string, i int, se *StepEntry, host string, err error) error {
	prefix := fmt.Sprintf("steps[%d]", i)
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

// hostVars layers variables, lowest precedence first: inventory vars, group
// vars (in group definition order), host vars, playbook vars, --var, and the
// built-ins host.name and host.address.
func hostVars(inv *Inventory, pb *Playbook, h *HostSpec, cli map[string]string) *Vars {
	layers := []map[string]string{inv.Vars}
	for _, g := range inv.GroupOrder {
		if contains(inv.Groups[g], h.Name) {
			layers = append(layers, inv.GroupVars[g])
		}
	}
	layers = append(layers, h.Vars, pb.Vars, cli, map[string]string{"host.name": h.Name, "host.address": h.Address})
	return NewVars(layers...)
}

// resolveNames expands host and group names to host names.
func resolveNames(inv *Inventory, names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		if g, ok := inv.Groups[n]; ok {
			for _, h := range g {
				out = appendUnique(out, h)
			}
			continue
		}
		if inv.Host(n) != nil {
			out = appendUnique(out, n)
			continue
		}
		groups := slices.Sorted(maps.Keys(inv.Groups))
		return nil, fmt.Errorf("unknown host or group %q in %s (groups: %s)", n, inv.File, strings.Join(groups, ", "))
	}
	return out, nil
}
