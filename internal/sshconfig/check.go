package sshconfig

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	sshconfig "github.com/kevinburke/ssh_config"
)

// This file checks config files before kplay relies on
// github.com/kevinburke/ssh_config's reading of them. It parses nothing:
// it looks at the first word of lines for Match and Include, and at the
// values the library returns. What the library refuses, or accepts but
// would read differently from ssh, is an error with the file and line,
// never a guess.

// maxIncludeDepth is the library's limit on nested Includes.
const maxIncludeDepth = 5

// checkFile checks one file, whose content is b, then the files it
// includes (before it: an error names the included file and its line),
// then the library's reading of it, then the values kplay uses. It
// returns the library's reading.
func checkFile(path string, b []byte, depth int) (*sshconfig.Config, error) {
	lines := strings.Split(string(b), "\n")
	for i, text := range lines {
		word, rest := firstWord(text)
		switch strings.ToLower(word) {
		case "match":
			if msg := checkMatch(rest); msg != "" {
				return nil, &Error{File: path, Line: i + 1, Key: "Match", Msg: msg}
			}
		case "host":
			if r, _, _ := strings.Cut(rest, "#"); strings.Contains(r, `"`) {
				return nil, &Error{File: path, Line: i + 1, Key: "Host", Msg: fmt.Sprintf("%q: quoted patterns are not supported: the parser would compare the quotes literally", r)}
			}
		case "include":
			if err := checkInclude(path, i+1, rest, depth); err != nil {
				return nil, err
			}
		}
	}
	cfg, err := sshconfig.DecodeBytes(b)
	if err != nil {
		return nil, libError(path, err)
	}
	return cfg, checkValues(path, lines, cfg)
}

// firstWord splits a line into its keyword and what follows it (after
// spaces or one "="), as the library's lexer separates them.
func firstWord(text string) (string, string) {
	s := strings.TrimLeft(strings.TrimSuffix(text, "\r"), " \t")
	end := strings.IndexAny(s, " \t=")
	if end < 0 {
		return s, ""
	}
	rest := strings.TrimLeft(s[end:], " \t")
	if r, ok := strings.CutPrefix(rest, "="); ok {
		rest = strings.TrimLeft(r, " \t")
	}
	return s[:end], rest
}

// supportedMatch is said with every refused Match line.
const supportedMatch = "kplay supports only `Match all` and `Match host PATTERN`"

// checkMatch says why a Match line's criteria (rest) would be misread by
// the library, or "". Criteria the library refuses itself (exec, user,
// !host, ...) are left to its error.
func checkMatch(rest string) string {
	rest, _, _ = strings.Cut(rest, "#")
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return ""
	}
	switch strings.ToLower(fields[0]) {
	case "all":
		if len(fields) > 1 {
			return fmt.Sprintf("%q: more than one criterion: the parser would read this as `Match all` and drop the rest (%s)", rest, supportedMatch)
		}
	case "host":
		if strings.Contains(rest, `"`) {
			return fmt.Sprintf("%q: quoted patterns are not supported: the parser would compare the quotes literally", rest)
		}
		if len(fields) > 2 {
			return fmt.Sprintf("%q: more than one criterion: the parser would take %q as more host patterns, where ssh reads a criterion after the pattern list (%s)",
				rest, strings.Join(fields[2:], " "), supportedMatch)
		}
		if len(fields) == 2 && strings.Contains(fields[1], ",") {
			return fmt.Sprintf("%q: a comma-separated pattern list: the parser would take %q as one literal pattern; write one `Match host` block per pattern",
				rest, fields[1])
		}
		if len(fields) == 2 && fields[1] != strings.ToLower(fields[1]) {
			return fmt.Sprintf("%q: an upper-case pattern: the parser compares case-sensitively, ssh does not; write the pattern in lower case", rest)
		}
	}
	return ""
}

// checkInclude checks the files an Include line names, found as the
// library finds them: absolute, ~/, in /etc/ssh for a file there, else in
// ~/.ssh of the user's home (from the password database, as the library).
func checkInclude(path string, line int, rest string, depth int) error {
	bad := func(format string, a ...any) error {
		return &Error{File: path, Line: line, Key: "Include", Msg: fmt.Sprintf(format, a...)}
	}
	if depth+1 > maxIncludeDepth {
		return bad("Includes nested more than %d deep (a loop?)", maxIncludeDepth)
	}
	rest, _, _ = strings.Cut(rest, "#")
	for _, d := range strings.Split(strings.TrimSuffix(rest, "\r"), " ") {
		var p string
		switch {
		case filepath.IsAbs(d):
			p = d
		case strings.HasPrefix(filepath.Clean(path), "/etc/ssh"):
			p = filepath.Join("/etc/ssh", d)
		case strings.HasPrefix(d, "~/"):
			p = filepath.Join(libHome(), d[2:])
		default:
			p = filepath.Join(libHome(), ".ssh", d)
		}
		names, err := filepath.Glob(p)
		if err != nil {
			return bad("pattern %q: %v", d, err)
		}
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				return bad("cannot read %s: %v", name, err)
			}
			if _, err := checkFile(name, b, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// libHome is the home directory the library resolves Includes in.
func libHome() string {
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return os.Getenv("HOME")
}

// libPos is how the library prefixes its errors: "(line, col): ".
var libPos = regexp.MustCompile(`^\((\d+), \d+\): `)

// libError turns the library's error for path into an *Error with the
// line it names.
func libError(path string, err error) error {
	if errors.Is(err, sshconfig.ErrDepthExceeded) {
		return &Error{File: path, Msg: fmt.Sprintf("Includes nested more than %d deep (a loop?)", maxIncludeDepth)}
	}
	msg := strings.TrimSpace(err.Error())
	e := &Error{File: path, Msg: "invalid ssh config: " + msg}
	if m := libPos.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = strings.TrimPrefix(msg[len(m[0]):], "ssh_config: ")
	}
	if strings.Contains(e.Msg, "Match") {
		e.Msg += " (" + supportedMatch + "; other forms are refused, not guessed)"
	}
	return e
}

// checkValues checks the values kplay reads in one file's blocks (not its
// Includes': each file is checked on its own), so that a bad one is
// reported with its line before any host is contacted. lines are the
// file's, to see whether a value was quoted.
func checkValues(path string, lines []string, cfg *sshconfig.Config) error {
	for _, h := range cfg.Hosts {
		for _, n := range h.Nodes {
			kv, ok := n.(*sshconfig.KV)
			if !ok {
				continue
			}
			quoted := false
			if l := kv.Pos().Line; l >= 1 && l <= len(lines) {
				quoted = strings.Contains(lines[l-1], `"`)
			}
			if msg := badValue(strings.ToLower(kv.Key), kv.Value, quoted); msg != "" {
				return &Error{File: path, Line: kv.Pos().Line, Key: kv.Key, Msg: msg}
			}
		}
	}
	return nil
}

// single are the keys kplay reads that take one value.
var single = map[string]bool{"hostname": true, "user": true, "port": true, "identityfile": true, "certificatefile": true,
	"connecttimeout": true, "stricthostkeychecking": true, "identitiesonly": true, "proxyjump": true,
	"serveraliveinterval": true, "serveralivecountmax": true}

// badValue says what is wrong with the value v of key (lower case), or
// "". quoted is whether its line holds a double quote.
func badValue(key, v string, quoted bool) string {
	if (single[key] || key == "userknownhostsfile") && strings.TrimSpace(v) == "" {
		return "no value"
	}
	if single[key] {
		if strings.Contains(v, `"`) {
			return fmt.Sprintf("%q: quotes must enclose the whole value", v)
		}
		if n := len(strings.Fields(v)); n > 1 && !quoted {
			return fmt.Sprintf("one value expected, got %d (%s)", n, v)
		}
	}
	switch key {
	case "port":
		if p, err := strconv.Atoi(v); err != nil || p < 1 || p > 65535 {
			return fmt.Sprintf("%q is not a port", v)
		}
	case "serveraliveinterval", "serveralivecountmax":
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return fmt.Sprintf("%q is not a whole number", v)
		}
	case "connecttimeout":
		if s, err := strconv.Atoi(v); err != nil || s < 0 {
			return fmt.Sprintf("%q is not a number of seconds", v)
		}
	case "stricthostkeychecking":
		switch strings.ToLower(v) {
		case "yes", "no", "ask", "accept-new", "off":
		default:
			return fmt.Sprintf("%q is not yes, no, ask, accept-new or off", v)
		}
	case "identitiesonly":
		if !strings.EqualFold(v, "yes") && !strings.EqualFold(v, "no") {
			return fmt.Sprintf("%q is not yes or no", v)
		}
	case "proxyjump":
		if strings.ContainsAny(v, " \t") {
			return fmt.Sprintf("%q: hops are separated by commas, without spaces", v)
		}
		if strings.ContainsAny(v, "%$") {
			return fmt.Sprintf("%q: kplay does not expand tokens or variables in ProxyJump", v)
		}
	case "hostname":
		return checkTokens(v, "%h")
	case "identityfile", "certificatefile":
		return badPath(key, v)
	case "userknownhostsfile":
		if quoted {
			return fmt.Sprintf("%q: quoted paths are not supported here (kplay splits this value at spaces)", v)
		}
		for _, p := range strings.Fields(v) {
			if msg := badPath(key, p); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// badPath checks one path of IdentityFile, CertificateFile or
// UserKnownHostsFile: its tokens, and ~ alone or followed by /.
func badPath(key, v string) string {
	if key == "userknownhostsfile" && strings.EqualFold(v, "none") {
		return "none is not supported: kplay always verifies host keys against a known_hosts file"
	}
	if strings.HasPrefix(v, "~") && v != "~" && !strings.HasPrefix(v, "~/") {
		return fmt.Sprintf("%q: ~user is not supported (use ~/ or an absolute path)", v)
	}
	return checkTokens(v, pathTokens)
}
