package inventory

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Pattern is one host pattern (a name, glob, ~regex or group, optionally
// prefixed with & or !), with where it was written.
type Pattern struct {
	Text string
	// File and Line say where it was written: "--limit", a playbook, or
	// the file of --limit @FILE (Line is 0 when unknown).
	File string
	Line int
}

// Where is "FILE:LINE", or FILE when the line is unknown.
func (p Pattern) Where() string {
	if p.Line > 0 {
		return p.File + ":" + strconv.Itoa(p.Line)
	}
	return p.File
}

// colonPatterns is split_host_pattern's fallback: ':'-separated patterns,
// where a bracketed expression may hold a ':'.
var colonPatterns = regexp.MustCompile(`(?:[^\s:\[\]]|\[[^\]]*\])+`)

// SplitHostPattern splits a host pattern string as Ansible's
// split_host_pattern does: on commas when there is one; else it is one
// pattern when it reads as an address (IPv6, host:port, ranges); else on
// colons. Whitespace around each pattern is dropped.
func SplitHostPattern(s string) []string {
	var parts []string
	switch {
	case strings.Contains(s, ","):
		parts = strings.Split(s, ",")
	default:
		if _, _, ok := parseAddress(s); ok {
			parts = []string{s}
		} else {
			parts = colonPatterns.FindAllString(s, -1)
		}
	}
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// LimitPatterns splits a --limit value as ansible-playbook does: host
// patterns, where @FILE stands for the file's lines, one pattern a line
// (taken whole, not split again; blank lines ignored).
func LimitPatterns(limit string) ([]Pattern, error) {
	var out []Pattern
	for _, p := range SplitHostPattern(limit) {
		file, ok := strings.CutPrefix(p, "@")
		if !ok {
			out = append(out, Pattern{Text: p, File: "--limit"})
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--limit @%s: %w", file, err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				out = append(out, Pattern{Text: line, File: file, Line: i + 1})
			}
		}
	}
	return out, nil
}

// Select returns the hosts patterns select, in Ansible's order and with
// its rules (inventory/manager.py _evaluate_patterns): plain patterns
// first, as a union, then &intersections, then !exclusions; when there is
// no plain pattern, all. Unlike Ansible, which warns and goes on, a pattern
// that matches no group and no host is an error naming it.
func (inv *Inventory) Select(patterns []Pattern) ([]*Host, error) {
	var plain, and, not []Pattern
	for _, p := range patterns {
		switch {
		case p.Text == "":
		case p.Text[0] == '!':
			not = append(not, p)
		case p.Text[0] == '&':
			and = append(and, p)
		default:
			plain = append(plain, p)
		}
	}
	if len(plain) == 0 {
		plain = []Pattern{{Text: "all"}}
	}
	var hosts []*Host
	for _, p := range append(append(plain, and...), not...) {
		that, err := inv.matchOne(p)
		if err != nil {
			return nil, err
		}
		set := map[*Host]bool{}
		for _, h := range that {
			set[h] = true
		}
		switch p.Text[0] {
		case '!':
			hosts = filterHosts(hosts, func(h *Host) bool { return !set[h] })
		case '&':
			hosts = filterHosts(hosts, func(h *Host) bool { return set[h] })
		default:
			have := map[*Host]bool{}
			for _, h := range hosts {
				have[h] = true
			}
			hosts = append(hosts, filterHosts(that, func(h *Host) bool { return !have[h] })...)
		}
	}
	return hosts, nil
}

func filterHosts(hosts []*Host, keep func(*Host) bool) []*Host {
	var out []*Host
	for _, h := range hosts {
		if keep(h) {
			out = append(out, h)
		}
	}
	return out
}

// subscript is a pattern's [N] or [N:M] suffix, as Ansible's
// PATTERN_WITH_SUBSCRIPT reads it.
var subscript = regexp.MustCompile(`^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$`)

// matchOne is _match_one_pattern: the hosts of one pattern, & and !
// ignored, with an optional [N] or [N:M] subscript.
func (inv *Inventory) matchOne(p Pattern) ([]*Host, error) {
	text := strings.TrimLeft(p.Text[:1], "&!") + p.Text[1:]
	if h := inv.hosts[text]; h != nil && text == p.Text {
		return []*Host{h}, nil
	}
	if text == "" {
		return nil, patternErr(p, "is empty")
	}
	expr, m := text, []string(nil)
	if text[0] != '~' {
		if m = subscript.FindStringSubmatch(text); m != nil {
			expr = m[1]
		}
	}
	hosts, err := inv.enumerate(expr, p)
	if err != nil || m == nil || len(hosts) == 0 {
		return hosts, err
	}
	return applySubscript(hosts, m, p)
}

// enumerate is _enumerate_matches: every group whose name the pattern
// matches gives its hosts; hosts are matched by name too when no group
// matched or the pattern is a regex or glob ('.', '?', '*' or '[').
func (inv *Inventory) enumerate(expr string, p Pattern) ([]*Host, error) {
	re, err := patternRegexp(expr)
	if err != nil {
		return nil, &PatternError{Pattern: p, Msg: "is not a valid pattern", Err: err}
	}
	var out []*Host
	groups := 0
	for _, g := range inv.groupOrder {
		if re.MatchString(g.Name) {
			groups++
			out = append(out, inv.HostsOf(g)...)
		}
	}
	if groups == 0 || expr[0] == '~' || strings.ContainsAny(expr, ".?*[") {
		for _, h := range inv.hostOrder {
			if re.MatchString(h.Name) {
				out = append(out, h)
			}
		}
	}
	if len(out) == 0 && groups == 0 {
		e := patternErr(p, "matches no host or group")
		e.NoMatch = true
		return nil, e
	}
	return out, nil
}

// patternRegexp compiles a glob, or a ~regex matched from the start of a
// name as Python's re.match does (Go's RE2 syntax: no look-arounds or
// back-references).
func patternRegexp(expr string) (*regexp.Regexp, error) {
	if rx, ok := strings.CutPrefix(expr, "~"); ok {
		return regexp.Compile(`^(?:` + rx + `)`)
	}
	return fnmatchRegexp(expr)
}

// applySubscript is _apply_subscript: [N] one host (negative from the
// end), [N:M] hosts N to M inclusive, [N:] from N on.
func applySubscript(hosts []*Host, m []string, p Pattern) ([]*Host, error) {
	n := len(hosts)
	if m[2] != "" {
		i, err := strconv.Atoi(m[2])
		if err == nil && i < 0 {
			i += n
		}
		if err != nil || i < 0 || i >= n {
			return nil, patternErr(p, "has no host at index %s (it matches %d)", m[2], n)
		}
		return hosts[i : i+1], nil
	}
	// [N:0] is [N] in Ansible (its end 0 reads as "no end"); [N-M] is
	// [N:M], which Ansible still accepts with a warning.
	start, _ := strconv.Atoi(m[3])
	end := n - 1
	if m[5] == "0" {
		if start >= n {
			return nil, patternErr(p, "has no host at index %d (it matches %d)", start, n)
		}
		return hosts[start : start+1], nil
	}
	if m[5] != "" {
		end, _ = strconv.Atoi(m[5])
	}
	if start >= n || start > end {
		return nil, nil
	}
	return hosts[start:min(end+1, n)], nil
}

// PatternError is a host pattern kplay refuses.
type PatternError struct {
	Pattern Pattern
	// NoMatch is true when the pattern matches no group and no host.
	NoMatch bool
	Msg     string
	Err     error
}

// Error names the pattern, where it was written, and what is wrong.
func (e *PatternError) Error() string {
	where := e.Pattern.Where()
	if where == "" {
		where = "pattern"
	}
	msg := fmt.Sprintf("%s: host pattern %q %s", where, e.Pattern.Text, e.Msg)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error, if any.
func (e *PatternError) Unwrap() error { return e.Err }

func patternErr(p Pattern, format string, a ...any) *PatternError {
	return &PatternError{Pattern: p, Msg: fmt.Sprintf(format, a...)}
}
