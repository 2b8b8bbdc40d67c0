package inventory

// HostVars returns h's variables merged as Ansible merges them, lowest
// precedence first: all's inventory vars; each group's inventory vars (by
// depth, then ansible_group_priority, then name); group_vars/all files;
// group_vars files of each group (per source, in source order); the host's
// inventory vars; host_vars files.
func (inv *Inventory) HostVars(h *Host) Vars {
	out := Vars{}
	merge := func(v Vars) {
		for k, x := range v {
			out[k] = x
		}
	}
	groups := inv.GroupsOf(h)
	merge(inv.groups["all"].Vars)
	for _, g := range groups {
		merge(g.Vars)
	}
	for _, f := range inv.files {
		merge(f.groups["all"])
	}
	for _, f := range inv.files {
		for _, g := range groups {
			merge(f.groups[g.Name])
		}
	}
	merge(h.Vars)
	for _, f := range inv.files {
		merge(f.hosts[h.Name])
	}
	return out
}

// Values returns the plain values of vars.
func (v Vars) Values() map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = x.Value
	}
	return out
}
