package sshconfig

import (
	"fmt"
	"strings"
)

// criterion is one condition of a Match line: host, originalhost, user,
// localuser (with a comma-separated pattern list) or all, maybe negated.
type criterion struct {
	name   string
	negate bool
	arg    string
}

// supportedMatch lists the Match criteria kplay evaluates, for errors.
const supportedMatch = "all, host, originalhost, user and localuser"

// parseMatch reads a Match line's criteria. A criterion kplay cannot
// evaluate (exec, canonical, final, localnetwork, tagged, ...) is an
// error naming it: its block must neither apply nor be dropped silently.
func parseMatch(d directive) ([]criterion, error) {
	bad := func(format string, a ...any) error {
		return &Error{File: d.file, Line: d.line, Key: "Match", Msg: fmt.Sprintf(format, a...)}
	}
	var out []criterion
	for i := 0; i < len(d.args); i++ {
		c := criterion{name: strings.ToLower(d.args[i])}
		if rest, ok := strings.CutPrefix(c.name, "!"); ok {
			c.name, c.negate = rest, true
		}
		switch c.name {
		case "all":
			if len(d.args) != 1 {
				return nil, bad("'all' cannot be combined with other Match criteria")
			}
		case "host", "originalhost", "user", "localuser":
			if i+1 >= len(d.args) {
				return nil, bad("criterion %q needs a pattern list", c.name)
			}
			i++
			c.arg = d.args[i]
		default:
			return nil, bad("criterion %q is not supported: kplay evaluates only %s, and will not guess whether this block applies", d.args[i], supportedMatch)
		}
		out = append(out, c)
	}
	return out, nil
}

// matchState is what Match criteria are tested against: the host as
// given, the host name and remote user known so far, the local user.
type matchState struct {
	original, host, user, localUser string
}

// matches reports whether every criterion holds, as OpenSSH's Match.
func (s matchState) matches(cs []criterion) bool {
	for _, c := range cs {
		var ok bool
		switch c.name {
		case "all":
			ok = true
		case "host":
			ok = matchList(strings.ToLower(s.host), c.arg, true)
		case "originalhost":
			ok = matchList(strings.ToLower(s.original), c.arg, true)
		case "user":
			ok = matchList(s.user, c.arg, false)
		case "localuser":
			ok = matchList(s.localUser, c.arg, false)
		}
		if ok == c.negate {
			return false
		}
	}
	return true
}

// hostMatches reports whether a Host line's patterns select host: one
// positive pattern matches and no negated one does.
func hostMatches(host string, patterns []string) bool {
	found := false
	for _, p := range patterns {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if glob(neg, host) {
				return false
			}
			continue
		}
		if glob(p, host) {
			found = true
		}
	}
	return found
}

// matchList is OpenSSH's match_pattern_list: s matches the comma-separated
// list when one positive pattern matches and no negated one does.
func matchList(s, list string, lower bool) bool {
	if lower {
		list = strings.ToLower(list)
	}
	found := false
	for _, p := range strings.Split(list, ",") {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if glob(neg, s) {
				return false
			}
			continue
		}
		if glob(p, s) {
			found = true
		}
	}
	return found
}

// glob matches s against an ssh pattern: * any run of characters, ? any
// one character, everything else literally.
func glob(pattern, s string) bool {
	for pattern != "" {
		switch pattern[0] {
		case '*':
			for pattern != "" && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if glob(pattern, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
		}
		pattern, s = pattern[1:], s[1:]
	}
	return s == ""
}
