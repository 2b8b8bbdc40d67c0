package inventory

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

var (
	iniSection   = regexp.MustCompile(`^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$`)
	iniGroupName = regexp.MustCompile(`^([^:\]\s]+)\s*(?:#.*)?$`)
)

// iniParser reads one INI inventory file into inv, as Ansible's ini
// inventory plugin does.
type iniParser struct {
	inv     *Inventory
	file    string
	lineno  int
	pending map[string]*pendingDecl
	order   []string
}

// pendingDecl is a group used in [g:vars] or [p:children] before it is
// declared.
type pendingDecl struct {
	line    int
	state   string
	parents []string
}

func (p *iniParser) errorf(key, format string, a ...any) *Error {
	return errorf(Pos{p.file, p.lineno}, key, format, a...)
}

func (p *iniParser) parse(data string) error {
	p.pending = map[string]*pendingDecl{}
	group, state := "ungrouped", "hosts"
	for _, line := range strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n") {
		p.lineno++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if m := iniSection.FindStringSubmatch(line); m != nil {
			group, state = safeGroupName(m[1]), m[2]
			if state == "" {
				state = "hosts"
			}
			if err := p.section(group, state, line); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			return p.errorf("", "invalid section %s: no spaces or other invalid characters in a section name", line)
		}
		var err error
		switch state {
		case "hosts":
			err = p.hostLine(group, line)
		case "vars":
			err = p.varLine(group, line)
		case "children":
			err = p.childLine(group, line)
		}
		if err != nil {
			return err
		}
	}
	for _, g := range p.order {
		d, ok := p.pending[g]
		if !ok {
			continue
		}
		p.lineno = d.line
		if d.state == "vars" {
			return p.errorf("["+g+":vars]", "section [%s:vars] is for an undefined group: %s", g, g)
		}
		parent := d.parents[len(d.parents)-1]
		return p.errorf("["+parent+":children]", "section [%s:children] names an undefined group: %s", parent, g)
	}
	return nil
}

func (p *iniParser) section(group, state, line string) error {
	if state != "hosts" && state != "children" && state != "vars" {
		return p.errorf(line, "section %s has unknown type %q (known: hosts, children, vars)", line, state)
	}
	if p.inv.groups[group] == nil {
		if _, ok := p.pending[group]; state == "vars" && !ok {
			p.addPending(group, &pendingDecl{line: p.lineno, state: state})
		}
		p.inv.addGroup(group, Pos{p.file, p.lineno})
	}
	if d, ok := p.pending[group]; ok && state != "vars" {
		if d.state == "children" {
			return p.addPendingChildren(group)
		}
		delete(p.pending, group)
	}
	return nil
}

func (p *iniParser) addPending(g string, d *pendingDecl) {
	p.pending[g] = d
	p.order = append(p.order, g)
}

func (p *iniParser) addPendingChildren(group string) error {
	d := p.pending[group]
	for _, parent := range d.parents {
		if err := p.inv.addChild(p.inv.addGroup(parent, Pos{}), p.inv.groups[group], Pos{p.file, d.line}); err != nil {
			return err
		}
		if pd, ok := p.pending[parent]; ok && pd.state == "children" {
			if err := p.addPendingChildren(parent); err != nil {
				return err
			}
		}
	}
	delete(p.pending, group)
	return nil
}

func (p *iniParser) hostLine(group, line string) error {
	tokens, err := shlexSplit(line)
	if err != nil {
		return p.errorf("", "cannot parse host line %q: %v", line, err)
	}
	if len(tokens) == 0 {
		return nil
	}
	names, port, err := expandHostPattern(tokens[0], true)
	if err != nil {
		return &Error{Pos: Pos{p.file, p.lineno}, Key: tokens[0], Msg: "bad host", Err: err}
	}
	pos := Pos{p.file, p.lineno}
	vars := Vars{}
	var keys []string
	for _, t := range tokens[1:] {
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return p.errorf(tokens[0], "want key=value after the host name, got %q", t)
		}
		if _, dup := vars[k]; !dup {
			keys = append(keys, k)
		}
		vars[k] = iniVar(v, pos)
	}
	g := p.inv.groups[group]
	for _, name := range names {
		h := p.inv.addHost(name, g, port, pos)
		for _, k := range keys {
			h.Vars[k] = vars[k]
		}
	}
	return nil
}

func (p *iniParser) varLine(group, line string) error {
	k, v, ok := strings.Cut(line, "=")
	if !ok {
		return p.errorf("["+group+":vars]", "want key=value, got %q", line)
	}
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	return setGroupVar(p.inv.groups[group], k, iniVar(v, Pos{p.file, p.lineno}), k)
}

// iniVar evaluates an INI value; a scalar keeps its text for templates.
func iniVar(raw string, pos Pos) Var {
	v := pyLiteral(raw)
	x := Var{Value: v, Pos: pos, Text: raw}
	if s, ok := v.(string); ok {
		x.Text = s
	}
	return x
}

func (p *iniParser) childLine(group, line string) error {
	m := iniGroupName.FindStringSubmatch(line)
	if m == nil {
		return p.errorf("["+group+":children]", "want a group name, got %q", line)
	}
	child := m[1]
	if c := p.inv.groups[child]; c != nil {
		return p.inv.addChild(p.inv.groups[group], c, Pos{p.file, p.lineno})
	}
	if d, ok := p.pending[child]; ok {
		d.parents = append(d.parents, group)
		return nil
	}
	p.addPending(child, &pendingDecl{line: p.lineno, state: "children", parents: []string{group}})
	return nil
}

// safeGroupName replaces characters that are invalid in a variable name
// with '_', as the INI plugin does for section names.
func safeGroupName(name string) string {
	var b strings.Builder
	for i, r := range name {
		ok := r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
		if i == 0 && unicode.IsDigit(r) {
			ok = false
		}
		if ok {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// shlexSplit splits s as Python's shlex.split(s, comments=True) does.
func shlexSplit(s string) ([]string, error) {
	var out []string
	var tok strings.Builder
	inTok := false
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inTok {
				out = append(out, tok.String())
				tok.Reset()
				inTok = false
			}
		case c == '#':
			if inTok {
				out = append(out, tok.String())
			}
			return out, nil
		case c == '\\':
			if i+1 >= len(rs) {
				return nil, fmt.Errorf("no escaped character")
			}
			i++
			tok.WriteRune(rs[i])
			inTok = true
		case c == '\'' || c == '"':
			end, err := shlexQuoted(rs, i, &tok)
			if err != nil {
				return nil, err
			}
			i = end
			inTok = true
		default:
			tok.WriteRune(c)
			inTok = true
		}
	}
	if inTok {
		out = append(out, tok.String())
	}
	return out, nil
}

// shlexQuoted reads a quoted part starting at rs[start] into tok and
// returns the index of the closing quote.
func shlexQuoted(rs []rune, start int, tok *strings.Builder) (int, error) {
	q := rs[start]
	for i := start + 1; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == q:
			return i, nil
		case q == '"' && c == '\\' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\'):
			i++
			tok.WriteRune(rs[i])
		default:
			tok.WriteRune(c)
		}
	}
	return 0, fmt.Errorf("no closing quotation")
}
