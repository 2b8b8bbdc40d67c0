package sshconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// directive is one line of a config file: a keyword and its arguments.
type directive struct {
	file string
	line int
	// key is the keyword, lower-case.
	key  string
	args []string
	// match is a Match line's criteria.
	match []criterion
	// inc is an Include line's files' directives, in order.
	inc []directive
}

// maxIncludeDepth bounds nested Includes, as OpenSSH's READCONF_MAX_DEPTH.
const maxIncludeDepth = 16

// parseFile reads the directives of the file at path, Includes expanded.
func parseFile(path, home string, depth int) ([]directive, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read ssh config: %v", err)}
	}
	var out []directive
	for i, text := range strings.Split(string(b), "\n") {
		d, ok, err := parseLine(path, i+1, text)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		switch d.key {
		case "match":
			if d.match, err = parseMatch(d); err != nil {
				return nil, err
			}
		case "include":
			if d.inc, err = include(d, home, depth); err != nil {
				return nil, err
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// parseLine splits one line as OpenSSH does: a keyword, then "=" or
// spaces, then arguments separated by spaces, double quotes grouping; a
// word that starts with # ends the line. ok is false for blank lines and
// comments.
func parseLine(file string, n int, text string) (directive, bool, error) {
	s := strings.TrimSpace(strings.TrimSuffix(text, "\r"))
	if s == "" || s[0] == '#' {
		return directive{}, false, nil
	}
	end := strings.IndexAny(s, " \t=")
	if end < 0 {
		return directive{}, false, &Error{File: file, Line: n, Key: s, Msg: "no argument after the keyword"}
	}
	key, rest := s[:end], strings.TrimLeft(s[end:], " \t")
	if r, ok := strings.CutPrefix(rest, "="); ok {
		rest = strings.TrimLeft(r, " \t")
	}
	args, err := splitArgs(rest)
	if err != nil {
		return directive{}, false, &Error{File: file, Line: n, Key: key, Msg: err.Error()}
	}
	if len(args) == 0 {
		return directive{}, false, &Error{File: file, Line: n, Key: key, Msg: "no argument after the keyword"}
	}
	return directive{file: file, line: n, key: strings.ToLower(key), args: args}, true, nil
}

// splitArgs splits a value into words: spaces separate, double quotes
// group (and are removed), a word starting with # begins a comment.
func splitArgs(s string) ([]string, error) {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" || s[0] == '#' {
			return out, nil
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, errors.New("unterminated quote")
			}
			out = append(out, s[1:1+end])
			s = s[2+end:]
			if s != "" && s[0] != ' ' && s[0] != '\t' {
				return nil, errors.New("a closing quote must end its word")
			}
			continue
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		out = append(out, s[:end])
		s = s[end:]
	}
}

// include reads the files an Include line names (globs; relative ones in
// ~/.ssh, as for a user's config), in name order per pattern.
func include(d directive, home string, depth int) ([]directive, error) {
	if depth >= maxIncludeDepth {
		return nil, &Error{File: d.file, Line: d.line, Key: "Include", Msg: fmt.Sprintf("more than %d nested Includes (a loop?)", maxIncludeDepth)}
	}
	var out []directive
	for _, pat := range d.args {
		p := expandTilde(pat, home)
		if !filepath.IsAbs(p) {
			p = filepath.Join(home, ".ssh", p)
		}
		names, err := filepath.Glob(p)
		if err != nil {
			return nil, &Error{File: d.file, Line: d.line, Key: "Include", Msg: fmt.Sprintf("bad pattern %q: %v", pat, err)}
		}
		sort.Strings(names)
		for _, name := range names {
			if st, err := os.Stat(name); err == nil && st.IsDir() {
				continue
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, &Error{File: d.file, Line: d.line, Key: "Include", Msg: err.Error()}
			}
			ds, err := parseFile(name, home, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, ds...)
		}
	}
	return out, nil
}
