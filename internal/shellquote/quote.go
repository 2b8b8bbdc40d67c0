// Package shellquote quotes words for a POSIX shell, so that a command line
// built in Go reaches the remote shell with every value as exactly one word.
package shellquote

import "strings"

// Quote returns s as one POSIX shell word: single-quoted, with embedded single
// quotes closed, backslash-escaped and reopened. Any byte string survives
// the remote shell unchanged.
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, unsafe) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// unsafe reports whether r needs quoting in a POSIX shell word.
func unsafe(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("@%+=:,./-_", r)
}

// QuoteAll quotes every word and joins them with spaces.
func QuoteAll(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// Script is the command that runs script src with sh, each argument a quoted
// positional parameter ($1, $2, ...): values never become shell code.
func Script(src string, args ...string) string {
	return "sh -c " + Quote(src) + " " + QuoteAll(append([]string{"sh"}, args...)...)
}

// Printable returns s with every control character (newline, tab, escape,
// DEL, ...) replaced by '?': safe inside a shell comment, where a newline
// would end the comment and start code, and in a key=value line, where it
// would start another key.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
