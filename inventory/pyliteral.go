package inventory

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pyLiteral converts an INI value as Ansible does: Python's
// ast.literal_eval, and the text itself when that fails. Supported:
// numbers, strings, True, False, None, lists, tuples and dicts; anything
// else (sets, bytes, complex numbers) stays text.
func pyLiteral(s string) any {
	p := &pyParser{s: strings.TrimLeft(s, " \t")}
	v, err := p.expr()
	if err != nil {
		return s
	}
	p.space()
	if p.i != len(p.s) {
		return s
	}
	return v
}

type pyParser struct {
	s string
	i int
}

var errPySyntax = errors.New("not a Python literal")

func (p *pyParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *pyParser) peek() byte {
	p.space()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// expr reads a value, or a bare tuple (1, 2) at the top level.
func (p *pyParser) expr() (any, error) {
	v, err := p.atom()
	if err != nil {
		return nil, err
	}
	if p.peek() != ',' {
		return v, nil
	}
	items := []any{v}
	for p.peek() == ',' {
		p.i++
		if c := p.peek(); c == 0 {
			break
		}
		x, err := p.atom()
		if err != nil {
			return nil, err
		}
		items = append(items, x)
	}
	return items, nil
}

func (p *pyParser) atom() (any, error) {
	c := p.peek()
	switch {
	case c == '[':
		p.i++
		return p.seq(']')
	case c == '(':
		p.i++
		return p.seq(')')
	case c == '{':
		p.i++
		return p.dict()
	case c == '\'' || c == '"':
		return p.strings()
	case c == 'r' || c == 'R' || c == 'u' || c == 'U':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '\'' || p.s[p.i+1] == '"') {
			return p.strings()
		}
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		return p.number()
	}
	start := p.i
	for p.i < len(p.s) && (isIdent(p.s[p.i])) {
		p.i++
	}
	switch p.s[start:p.i] {
	case "True":
		return true, nil
	case "False":
		return false, nil
	case "None":
		return nil, nil
	}
	return nil, errPySyntax
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *pyParser) seq(end byte) (any, error) {
	items := []any{}
	for {
		if p.peek() == end {
			p.i++
			if end == ')' && len(items) == 1 && !p.trailingComma() {
				return items[0], nil
			}
			return items, nil
		}
		v, err := p.atom()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		switch p.peek() {
		case ',':
			p.i++
		case end:
		default:
			return nil, errPySyntax
		}
	}
}

// trailingComma reports whether the text just before the closing bracket
// was a comma, making (x,) a tuple rather than x.
func (p *pyParser) trailingComma() bool {
	j := p.i - 2
	for j >= 0 && (p.s[j] == ' ' || p.s[j] == '\t') {
		j--
	}
	return j >= 0 && p.s[j] == ','
}

func (p *pyParser) dict() (any, error) {
	m := map[string]any{}
	for {
		if p.peek() == '}' {
			p.i++
			return m, nil
		}
		k, err := p.atom()
		if err != nil {
			return nil, err
		}
		if _, isList := k.([]any); isList {
			return nil, errPySyntax
		}
		if p.peek() != ':' {
			return nil, errPySyntax // a set, or bad syntax
		}
		p.i++
		v, err := p.atom()
		if err != nil {
			return nil, err
		}
		m[jsonKey(k)] = v
		switch p.peek() {
		case ',':
			p.i++
		case '}':
		default:
			return nil, errPySyntax
		}
	}
}

// strings reads one or more adjacent string literals, concatenated.
func (p *pyParser) strings() (any, error) {
	var b strings.Builder
	for {
		c := p.peek()
		raw := false
		if c == 'r' || c == 'R' || c == 'u' || c == 'U' {
			if p.i+1 >= len(p.s) || (p.s[p.i+1] != '\'' && p.s[p.i+1] != '"') {
				break
			}
			raw = c == 'r' || c == 'R'
			p.i++
			c = p.s[p.i]
		}
		if c != '\'' && c != '"' {
			break
		}
		if err := p.str(&b, raw); err != nil {
			return nil, err
		}
	}
	return b.String(), nil
}

func (p *pyParser) str(b *strings.Builder, raw bool) error {
	q := p.s[p.i : p.i+1]
	if strings.HasPrefix(p.s[p.i:], q+q+q) {
		q = q + q + q
	}
	p.i += len(q)
	for p.i < len(p.s) {
		if strings.HasPrefix(p.s[p.i:], q) {
			p.i += len(q)
			return nil
		}
		c := p.s[p.i]
		if c == '\\' && p.i+1 < len(p.s) {
			if raw {
				b.WriteString(p.s[p.i : p.i+2])
				p.i += 2
				continue
			}
			if err := p.escape(b); err != nil {
				return err
			}
			continue
		}
		if c == '\n' && len(q) == 1 {
			return errPySyntax
		}
		r, n := utf8.DecodeRuneInString(p.s[p.i:])
		b.WriteRune(r)
		p.i += n
	}
	return errPySyntax
}

func (p *pyParser) escape(b *strings.Builder) error {
	c := p.s[p.i+1]
	p.i += 2
	simple := map[byte]string{'\\': "\\", '\'': "'", '"': "\"", 'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t", 'v': "\v", '\n': ""}
	if s, ok := simple[c]; ok {
		b.WriteString(s)
		return nil
	}
	hexLen := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
	if hexLen > 0 {
		if p.i+hexLen > len(p.s) {
			return errPySyntax
		}
		n, err := strconv.ParseUint(p.s[p.i:p.i+hexLen], 16, 32)
		if err != nil {
			return errPySyntax
		}
		b.WriteRune(rune(n))
		p.i += hexLen
		return nil
	}
	if c >= '0' && c <= '7' {
		j := p.i - 1
		for p.i < len(p.s) && p.i-j < 3 && p.s[p.i] >= '0' && p.s[p.i] <= '7' {
			p.i++
		}
		n, _ := strconv.ParseUint(p.s[j:p.i], 8, 32)
		b.WriteRune(rune(n))
		return nil
	}
	b.WriteByte('\\')
	b.WriteByte(c)
	return nil
}

// number reads an int or a float, with an optional sign (unary + or -).
func (p *pyParser) number() (any, error) {
	p.space()
	sign := ""
	for p.i < len(p.s) && (p.s[p.i] == '-' || p.s[p.i] == '+') {
		if p.s[p.i] == '-' {
			if sign == "-" {
				sign = ""
			} else {
				sign = "-"
			}
		}
		p.i++
		p.space()
	}
	start := p.i
	for p.i < len(p.s) && (isIdent(p.s[p.i]) || p.s[p.i] == '.' ||
		(p.s[p.i] == '-' || p.s[p.i] == '+') && (p.s[p.i-1] == 'e' || p.s[p.i-1] == 'E') && !strings.HasPrefix(strings.ToLower(p.s[start:]), "0x")) {
		p.i++
	}
	return parsePyNumber(sign, p.s[start:p.i])
}

func parsePyNumber(sign, t string) (any, error) {
	if t == "" || strings.HasSuffix(t, "_") || strings.Contains(t, "__") || strings.HasSuffix(strings.ToLower(t), "j") {
		return nil, errPySyntax
	}
	clean := strings.ReplaceAll(t, "_", "")
	lower := strings.ToLower(clean)
	for prefix, base := range map[string]int{"0x": 16, "0o": 8, "0b": 2} {
		if strings.HasPrefix(lower, prefix) {
			n, err := strconv.ParseInt(sign+clean[2:], base, 64)
			if err != nil {
				return nil, errPySyntax
			}
			return n, nil
		}
	}
	if !strings.ContainsAny(lower, ".e") {
		if len(clean) > 1 && clean[0] == '0' && strings.Trim(clean, "0") != "" {
			return nil, errPySyntax // 010 is a syntax error in Python 3
		}
		n, err := strconv.ParseInt(sign+clean, 10, 64)
		if err != nil {
			return nil, errPySyntax
		}
		return n, nil
	}
	if strings.ContainsAny(lower, "abcdfghijklmnopqrstuvwxyz") || strings.HasPrefix(t, "_") {
		return nil, errPySyntax
	}
	f, err := strconv.ParseFloat(sign+clean, 64)
	if err != nil {
		return nil, errPySyntax
	}
	return f, nil
}
