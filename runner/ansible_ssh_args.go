package runner

import (
	"fmt"
	"strings"
)

// AnsibleSSHArgs reads ansible_ssh_common_args or ansible_ssh_extra_args
// and returns the bastion chain they ask for: `-o ProxyJump=X`,
// `-o ProxyJump X`, `-oProxyJump=X` or `-J X`, "" when none. Any other
// option is refused by name: kplay would otherwise silently ignore it.
func AnsibleSSHArgs(args string) (string, error) {
	words, err := splitArgs(args)
	if err != nil {
		return "", err
	}
	jump := ""
	set := func(v string) {
		if jump == "" { // ssh(1) keeps the first value
			jump = v
		}
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		var opt string
		switch {
		case w == "-J" || w == "-o":
			if i+1 >= len(words) {
				return "", fmt.Errorf("%s needs a value", w)
			}
			i++
			if w == "-J" {
				set(words[i])
				continue
			}
			opt = words[i]
		case strings.HasPrefix(w, "-J"):
			set(w[2:])
			continue
		case strings.HasPrefix(w, "-o"):
			opt = w[2:]
		default:
			return "", fmt.Errorf("ssh option %q is not supported (kplay understands only -o ProxyJump=HOSTS and -J HOSTS)", w)
		}
		name, value, ok := strings.Cut(opt, "=")
		if !ok {
			name, value, _ = strings.Cut(strings.TrimSpace(opt), " ")
		}
		if !strings.EqualFold(strings.TrimSpace(name), "ProxyJump") {
			return "", fmt.Errorf("ssh option -o %s is not supported (kplay understands only -o ProxyJump=HOSTS and -J HOSTS)", strings.TrimSpace(name))
		}
		set(strings.TrimSpace(value))
	}
	return jump, nil
}

// splitArgs splits a command-line fragment into words as a POSIX shell
// would for quotes ('…', "…") and backslashes; nothing is expanded.
func splitArgs(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated %c quote in %q", c, s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
