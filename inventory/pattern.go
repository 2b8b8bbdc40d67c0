package inventory

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Ansible's address patterns (ansible/parsing/utils/addresses.py), with
// ranges allowed.
var (
	bracketedHostPort = regexp.MustCompile(`^\[(.+)\]:([0-9]+)$`)
	hostPort          = regexp.MustCompile(`^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$`)
	ipv4Pattern       = regexp.MustCompile(`(?i)^(?:` + ipv4Comp + `\.){3}` + ipv4Comp + `$`)
	hostnamePattern   = regexp.MustCompile(`(?i)^` + hostLabel + `(?:\.` + hostLabel + `)*$`)
	ipv6Pattern       = regexp.MustCompile(`(?i)^(?:` + ipv6Alternatives() + `)$`)
)

const (
	numRange   = `\[[0-9]+:[0-9]+(?::[0-9]+)?\]`
	alphaRange = `\[[a-z]:[a-z](?::[0-9]+)?\]`
	ipv4Comp   = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|` + numRange + `)`
	ipv6Comp   = `(?:[0-9a-f]{1,4}|` + `\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]` + `)`
	hostLabel  = `(?:[a-z0-9_-]|` + numRange + `|` + alphaRange + `)(?:[a-z0-9_-]|` + numRange + `|` + alphaRange + `)*`
)

func ipv6Alternatives() string {
	c := ipv6Comp
	i4 := ipv4Comp
	alts := []string{
		fmt.Sprintf(`(?:%s:){7}%s`, c, c),
		fmt.Sprintf(`(?:%s:){1,6}:`, c),
		fmt.Sprintf(`(?:%s:)(?::%s){1,6}`, c, c),
		fmt.Sprintf(`(?:%s:){2}(?::%s){1,5}`, c, c),
		fmt.Sprintf(`(?:%s:){3}(?::%s){1,4}`, c, c),
		fmt.Sprintf(`(?:%s:){4}(?::%s){1,3}`, c, c),
		fmt.Sprintf(`(?:%s:){5}(?::%s){1,2}`, c, c),
		fmt.Sprintf(`(?:%s:){6}(?::%s)`, c, c),
		fmt.Sprintf(`:(?::%s){1,6}`, c),
		fmt.Sprintf(`%s?::`, c),
		fmt.Sprintf(`(?:0:){6}(?:%s\.){3}%s`, i4, i4),
		fmt.Sprintf(`::(?:ffff:)?(?:%s\.){3}%s`, i4, i4),
		fmt.Sprintf(`(?:0:){5}ffff:(?:%s\.){3}%s`, i4, i4),
	}
	return strings.Join(alts, "|")
}

// parseAddress splits host[:port] as Ansible's parse_address does, with
// ranges allowed. ok is false when the text is not a host identifier.
func parseAddress(s string) (host string, port int, ok bool) {
	for _, re := range []*regexp.Regexp{bracketedHostPort, hostPort} {
		if m := re.FindStringSubmatch(s); m != nil {
			s = m[1]
			p, err := strconv.Atoi(m[2])
			if err != nil {
				return "", 0, false
			}
			port = p
		}
	}
	if ipv4Pattern.MatchString(s) || ipv6Pattern.MatchString(s) || hostnamePattern.MatchString(s) {
		return s, port, true
	}
	return "", 0, false
}

// expandHostPattern expands an inventory host entry: an optional port, and
// any [a:b] or [a:b:step] ranges. ini adds the INI plugin's extra checks.
func expandHostPattern(pattern string, ini bool) (names []string, port int, err error) {
	host, p, ok := parseAddress(pattern)
	if !ok {
		host, p = pattern, 0
	}
	if ini && strings.HasSuffix(strings.TrimSpace(pattern), ":") && p == 0 {
		return nil, 0, fmt.Errorf("invalid host pattern %q: a trailing ':' is reserved for a port", pattern)
	}
	if !strings.Contains(host, "[") {
		names = []string{host}
	} else if names, err = expandRange(host); err != nil {
		return nil, 0, fmt.Errorf("host range in %q: %w", pattern, err)
	}
	if ini {
		for _, n := range names {
			if strings.TrimSpace(n) == "---" {
				return nil, 0, fmt.Errorf("invalid host pattern %q: '---' is a sign this is a YAML file", pattern)
			}
		}
	}
	if port > 65535 {
		return nil, 0, fmt.Errorf("port %d out of range", port)
	}
	return names, p, nil
}

const asciiLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// expandRange expands the first [beg:end(:step)] of line, then the rest, as
// Ansible's expand_hostname_range does.
func expandRange(line string) ([]string, error) {
	i := strings.IndexByte(line, '[')
	j := strings.IndexByte(line, ']')
	if j < 0 {
		return nil, errors.New("'[' without ']'")
	}
	if j < i {
		return nil, errors.New("']' before '['")
	}
	head, nrange, tail := line[:i], line[i+1:j], line[j+1:]
	bounds := strings.Split(nrange, ":")
	if len(bounds) != 2 && len(bounds) != 3 {
		return nil, errors.New("host range must be begin:end or begin:end:step")
	}
	beg, end, step := bounds[0], bounds[1], 1
	if len(bounds) == 3 {
		s, err := strconv.Atoi(bounds[2])
		if err != nil || s <= 0 {
			return nil, fmt.Errorf("bad step %q", bounds[2])
		}
		step = s
	}
	if beg == "" {
		beg = "0"
	}
	if end == "" {
		return nil, errors.New("host range must specify end value")
	}
	width := 0
	if beg[0] == '0' && len(beg) > 1 {
		if len(beg) != len(end) {
			return nil, errors.New("host range must specify equal-length begin and end formats")
		}
		width = len(beg)
	}
	var seq []string
	ib, ie := strings.Index(asciiLetters, beg), strings.Index(asciiLetters, end)
	if len(beg) == 1 && len(end) == 1 && ib >= 0 && ie >= 0 {
		if ib > ie {
			return nil, errors.New("host range must have begin <= end")
		}
		for k := ib; k <= ie; k += step {
			seq = append(seq, asciiLetters[k:k+1])
		}
	} else {
		b, err1 := strconv.Atoi(beg)
		e, err2 := strconv.Atoi(end)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad range [%s]: neither numeric nor single letters", nrange)
		}
		if b > e {
			return nil, fmt.Errorf("range [%s] is empty: begin must be <= end (Ansible would silently add no host)", nrange)
		}
		if e-b > 10_000_000 {
			return nil, fmt.Errorf("range [%s] is too large", nrange)
		}
		for k := b; k <= e; k += step {
			seq = append(seq, fmt.Sprintf("%0*d", width, k))
		}
	}
	var out []string
	for _, s := range seq {
		name := head + s + tail
		if strings.Contains(name, "[") {
			sub, err := expandRange(name)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		} else {
			out = append(out, name)
		}
	}
	return out, nil
}
