// Package inventory reads Ansible inventories as ansible-inventory does:
// YAML and INI files, host lists, directories of inventories, several
// sources merged in order, and group_vars/ and host_vars/ beside them. It
// resolves each host's groups and variables with Ansible's precedence. It
// knows nothing of SSH or of what kplay does with the variables.
package inventory

import (
	"fmt"
	"slices"
	"strings"
)

// Pos is where something was defined: a file and a line (0 when unknown).
type Pos struct {
	File string
	Line int
}

// String formats as file:line, or file alone without a line.
func (p Pos) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// Var is one variable's value and where it was set. Value is what Ansible
// would hold: nil, bool, int64, float64, string, []any or map[string]any.
// Text is a scalar as written (YAML's 1.10 stays "1.10"), for templates.
type Var struct {
	Value any
	Text  string
	Pos   Pos
}

// String returns a scalar's text, and false for a list or a mapping.
func (v Var) String() (string, bool) {
	switch x := v.Value.(type) {
	case []any, map[string]any:
		return "", false
	case string:
		return x, true
	}
	if v.Text != "" {
		return v.Text, true
	}
	if v.Value == nil {
		return "", true
	}
	return pyRepr(v.Value), true
}

// Vars maps variable names to values.
type Vars map[string]Var

// Error is bad inventory input: where, which key, and what is wrong.
type Error struct {
	Pos Pos
	Key string
	Msg string
	Err error
}

// Error formats as file:line: key "k": msg.
func (e *Error) Error() string {
	loc := e.Pos.String()
	if loc == "" {
		loc = "inventory"
	}
	msg := e.Msg
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: key %q: %s", loc, e.Key, msg)
	}
	return fmt.Sprintf("%s: %s", loc, msg)
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

func errorf(pos Pos, key, format string, a ...any) *Error {
	return &Error{Pos: pos, Key: key, Msg: fmt.Sprintf(format, a...)}
}

// Group is an inventory group.
type Group struct {
	Name string
	// Vars are the group's variables from inventory sources (not from
	// group_vars/ files).
	Vars Vars
	// Hosts are the hosts directly in the group, in the order they were added.
	Hosts []*Host
	// Children are the child groups, in the order they were added.
	Children []*Group
	// Parents are the parent groups.
	Parents []*Group
	// Priority is ansible_group_priority (default 1).
	Priority int
	// Pos is where the group was first defined.
	Pos Pos

	depth   int
	hostSet map[*Host]bool
}

// Depth is the group's depth below all (all is 0, its children 1, ...).
func (g *Group) Depth() int { return g.depth }

// Host is an inventory host.
type Host struct {
	Name string
	// Vars are the host's variables from inventory sources (not from
	// host_vars/ files).
	Vars Vars
	// Pos is where the host was first defined.
	Pos Pos

	// groups are the groups the host is directly in, in order.
	groups []*Group
	order  int
}

// Inventory is a loaded, reconciled inventory.
type Inventory struct {
	// Sources are the -i sources, in order.
	Sources []string

	groups     map[string]*Group
	groupOrder []*Group
	hosts      map[string]*Host
	hostOrder  []*Host
	// files holds group_vars/ and host_vars/ per source directory, in source order.
	files []*varFiles
}

func newInventory() *Inventory {
	inv := &Inventory{groups: map[string]*Group{}, hosts: map[string]*Host{}}
	inv.addGroup("all", Pos{})
	inv.addGroup("ungrouped", Pos{})
	// Cannot fail: both groups exist and form no cycle.
	_ = inv.addChild(inv.groups["all"], inv.groups["ungrouped"], Pos{})
	return inv
}

// Group returns the named group, or nil.
func (inv *Inventory) Group(name string) *Group { return inv.groups[name] }

// Host returns the named host, or nil.
func (inv *Inventory) Host(name string) *Host { return inv.hosts[name] }

// Hosts returns every host in the order first defined.
func (inv *Inventory) Hosts() []*Host { return inv.hostOrder }

// Groups returns every group in the order first defined (all and ungrouped first).
func (inv *Inventory) Groups() []*Group { return inv.groupOrder }

func (inv *Inventory) addGroup(name string, pos Pos) *Group {
	if g, ok := inv.groups[name]; ok {
		return g
	}
	g := &Group{Name: name, Vars: Vars{}, Priority: 1, Pos: pos, hostSet: map[*Host]bool{}}
	inv.groups[name] = g
	inv.groupOrder = append(inv.groupOrder, g)
	return g
}

// addHost adds a host (if new) to group g (if not nil). port, when not
// zero, sets ansible_port on a new host only, as Ansible does.
func (inv *Inventory) addHost(name string, g *Group, port int, pos Pos) *Host {
	h, ok := inv.hosts[name]
	if !ok {
		h = &Host{Name: name, Vars: Vars{}, Pos: pos, order: len(inv.hostOrder)}
		if port != 0 {
			h.Vars["ansible_port"] = Var{Value: int64(port), Pos: pos}
		}
		inv.hosts[name] = h
		inv.hostOrder = append(inv.hostOrder, h)
	}
	if g != nil && !g.hostSet[h] {
		g.hostSet[h] = true
		g.Hosts = append(g.Hosts, h)
		h.groups = append(h.groups, g)
	}
	return h
}

// addChild makes child a child group of parent, refusing cycles.
func (inv *Inventory) addChild(parent, child *Group, pos Pos) error {
	if parent == child {
		return errorf(pos, child.Name, "group %q cannot be a child of itself", child.Name)
	}
	if slices.Contains(parent.Children, child) {
		return nil
	}
	if isAncestor(child, parent) {
		return errorf(pos, child.Name, "adding group %q as a child of %q creates a loop", child.Name, parent.Name)
	}
	parent.Children = append(parent.Children, child)
	child.Parents = append(child.Parents, parent)
	return nil
}

// isAncestor reports whether a is g or an ancestor of g.
func isAncestor(a, g *Group) bool {
	seen := map[*Group]bool{}
	stack := []*Group{g}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if x == a {
			return true
		}
		if seen[x] {
			continue
		}
		seen[x] = true
		stack = append(stack, x.Parents...)
	}
	return false
}

func (g *Group) removeHost(h *Host) {
	if !g.hostSet[h] {
		return
	}
	delete(g.hostSet, h)
	g.Hosts = slices.DeleteFunc(g.Hosts, func(x *Host) bool { return x == h })
	h.groups = slices.DeleteFunc(h.groups, func(x *Group) bool { return x == g })
}

// reconcile applies Ansible's rules once every source is parsed: groups
// without a parent become children of all; a host in no group but all goes
// to ungrouped, and a host in another group leaves ungrouped.
func (inv *Inventory) reconcile() {
	all, ungrouped := inv.groups["all"], inv.groups["ungrouped"]
	for _, g := range inv.groupOrder {
		if g != all && len(g.Parents) == 0 {
			_ = inv.addChild(all, g, Pos{})
		}
	}
	for _, h := range inv.hostOrder {
		inUngrouped, other := false, false
		for _, g := range h.groups {
			switch g {
			case ungrouped:
				inUngrouped = true
			case all:
			default:
				other = true
			}
		}
		switch {
		case inUngrouped && other:
			ungrouped.removeHost(h)
		case !inUngrouped && !other:
			inv.addHost(h.Name, ungrouped, 0, h.Pos)
		}
	}
	inv.computeDepths()
}

// computeDepths sets each group's depth: the longest path from all.
func (inv *Inventory) computeDepths() {
	memo := map[*Group]int{}
	var depth func(g *Group) int
	depth = func(g *Group) int {
		if d, ok := memo[g]; ok {
			return d
		}
		d := 0
		for _, p := range g.Parents {
			d = max(d, depth(p)+1)
		}
		memo[g] = d
		return d
	}
	for _, g := range inv.groupOrder {
		g.depth = depth(g)
	}
}

// GroupsOf returns every group h belongs to, ancestors included, all
// excluded, sorted as Ansible applies their variables: by depth, then
// ansible_group_priority, then name.
func (inv *Inventory) GroupsOf(h *Host) []*Group {
	seen := map[*Group]bool{}
	var out []*Group
	var walk func(g *Group)
	walk = func(g *Group) {
		if seen[g] {
			return
		}
		seen[g] = true
		if g.Name != "all" {
			out = append(out, g)
		}
		for _, p := range g.Parents {
			walk(p)
		}
	}
	for _, g := range h.groups {
		walk(g)
	}
	slices.SortFunc(out, func(a, b *Group) int {
		if a.depth != b.depth {
			return a.depth - b.depth
		}
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// HostsOf returns the hosts of g and of its descendants, without
// duplicates, in Ansible's order: the group's own hosts, then its
// descendants' level by level.
func (inv *Inventory) HostsOf(g *Group) []*Host {
	seenG := map[*Group]bool{g: true}
	seenH := map[*Host]bool{}
	var out []*Host
	level := []*Group{g}
	for len(level) > 0 {
		var next []*Group
		for _, x := range level {
			for _, h := range x.Hosts {
				if !seenH[h] {
					seenH[h] = true
					out = append(out, h)
				}
			}
			for _, c := range x.Children {
				if !seenG[c] {
					seenG[c] = true
					next = append(next, c)
				}
			}
		}
		level = next
	}
	return out
}
