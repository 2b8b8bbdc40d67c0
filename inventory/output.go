package inventory

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ListJSON is ansible-inventory --list: every group with its hosts and
// children, and _meta.hostvars, formatted as ansible-inventory formats it
// (sorted keys, four-space indent), so that the two diff clean.
func (inv *Inventory) ListJSON() string {
	doc := map[string]any{}
	seen := map[*Group]bool{}
	inv.formatGroup(inv.groups["all"], doc, seen)
	hostvars := map[string]any{}
	for _, h := range inv.hostOrder {
		if v := inv.HostVars(h); len(v) > 0 {
			hostvars[h.Name] = v.Values()
		}
	}
	doc["_meta"] = map[string]any{"hostvars": hostvars}
	return PyJSON(doc) + "\n"
}

// formatGroup adds g and, once each, its descendants to doc, as
// ansible-inventory's json_inventory does.
func (inv *Inventory) formatGroup(g *Group, doc map[string]any, seen map[*Group]bool) {
	entry := map[string]any{}
	if g.Name != "all" && len(g.Hosts) > 0 {
		hosts := make([]any, len(g.Hosts))
		for i, h := range g.Hosts {
			hosts[i] = h.Name
		}
		entry["hosts"] = hosts
	}
	children := make([]any, 0, len(g.Children))
	for _, c := range g.Children {
		children = append(children, c.Name)
		if !seen[c] {
			inv.formatGroup(c, doc, seen)
			seen[c] = true
		}
	}
	if len(children) > 0 {
		entry["children"] = children
	}
	if len(entry) > 0 {
		doc[g.Name] = entry
	}
}

// Graph is ansible-inventory --graph [GROUP].
func (inv *Inventory) Graph(group string) (string, error) {
	g := inv.groups[group]
	if g == nil {
		return "", fmt.Errorf("no group %q", group)
	}
	var b strings.Builder
	graphGroup(&b, g, 0)
	return b.String(), nil
}

func graphLine(b *strings.Builder, name string, depth int) {
	if depth > 0 {
		b.WriteString(strings.Repeat("  |", depth) + "--")
	}
	b.WriteString(name + "\n")
}

func graphGroup(b *strings.Builder, g *Group, depth int) {
	graphLine(b, "@"+g.Name+":", depth)
	for _, c := range g.Children {
		graphGroup(b, c, depth+1)
	}
	if g.Name != "all" {
		for _, h := range g.Hosts {
			graphLine(b, h.Name, depth+1)
		}
	}
}

// HostJSON is ansible-inventory --host NAME: the host's merged variables.
func (inv *Inventory) HostJSON(name string) (string, error) {
	h := inv.hosts[name]
	if h == nil {
		return "", fmt.Errorf("no host %q", name)
	}
	return PyJSON(inv.HostVars(h).Values()) + "\n", nil
}

// PyJSON formats v as Python's json.dumps(v, sort_keys=True, indent=4).
func PyJSON(v any) string {
	var b strings.Builder
	writePyJSON(&b, v, 0)
	return b.String()
}

func writePyJSON(b *strings.Builder, v any, depth int) {
	pad := strings.Repeat("    ", depth+1)
	end := strings.Repeat("    ", depth)
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			b.WriteString("{}")
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{\n")
		for i, k := range keys {
			b.WriteString(pad + pyString(k) + ": ")
			writePyJSON(b, x[k], depth+1)
			if i < len(keys)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString(end + "}")
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, e := range x {
			b.WriteString(pad)
			writePyJSON(b, e, depth+1)
			if i < len(x)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString(end + "]")
	case string:
		b.WriteString(pyString(x))
	default:
		b.WriteString(pyRepr(v))
	}
}

// pyRepr formats a scalar as Python's json module does.
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return pyFloat(x)
	case string:
		return pyString(x)
	}
	return pyString(fmt.Sprint(v))
}

// pyFloat formats f as Python's float repr.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// pyString quotes s as Python's json.dumps(ensure_ascii=False) does.
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
