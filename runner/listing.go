package runner

import (
	"fmt"
	"io"
	"strings"
)

// WriteListing writes, per play, the hosts it targets (hosts) and the
// steps it runs with their tags (steps), as ansible-playbook's
// --list-hosts and --list-tasks do, then the steps left out by tags or
// --start-at-step. It needs no host.
func WriteListing(w io.Writer, plan *Plan, hosts, steps bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "playbook: %s\n", plan.Playbook.File)
	for i, pp := range plan.Plays {
		p := pp.Play
		fmt.Fprintf(&b, "\n  play %d: %s (hosts: %s; serial: %s; rollback: %s)\n", i+1, p.Label(i), strings.Join(p.Hosts, ","), p.Serial, p.Rollback)
		if hosts {
			fmt.Fprintf(&b, "    hosts (%d):\n", len(pp.Hosts))
			for _, h := range pp.Hosts {
				fmt.Fprintf(&b, "      %s\n", h.Name)
			}
		}
		if steps {
			fmt.Fprintf(&b, "    steps (%d):\n", len(p.Steps))
			for _, se := range p.Steps {
				fmt.Fprintf(&b, "      %s%s\n", stepTitle(se.Label(), se.Type), tagSuffix(se.Tags))
			}
		}
	}
	if steps && len(plan.Skipped) > 0 {
		fmt.Fprintf(&b, "\n  skipped (%d):\n", len(plan.Skipped))
		for _, s := range plan.Skipped {
			by := "by tags"
			if s.Why != "tags" {
				by = "by --" + s.Why
			}
			fmt.Fprintf(&b, "    %s: %s%s (%s)\n", s.Play, stepTitle(s.Name, s.Type), tagSuffix(s.Tags), by)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// stepTitle is "name (type)", or the type alone for an unnamed step.
func stepTitle(name, typ string) string {
	if name == typ {
		return name
	}
	return name + " (" + typ + ")"
}
