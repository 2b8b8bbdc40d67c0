package inventory

import (
	"regexp"
	"strings"
)

// fnmatchRegexp translates a shell glob to a Go regular expression that
// matches a whole name, as Python's fnmatch.translate does (Ansible matches
// host patterns with it): * and ? and [set] with [!negation]; there is no
// way to quote a meta-character.
func fnmatchRegexp(pat string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	star := false
	for i := 0; i < len(pat); {
		c := pat[i]
		i++
		switch c {
		case '*':
			if !star {
				b.WriteString(`.*`)
			}
			star = true
			continue
		case '?':
			b.WriteString(`.`)
		case '[':
			class, next := fnmatchClass(pat, i)
			b.WriteString(class)
			i = next
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
		star = false
	}
	b.WriteString(`)$`)
	return regexp.Compile(b.String())
}

// fnmatchClass translates the bracket expression whose '[' ends just
// before i; it returns the regexp text and where the pattern goes on.
func fnmatchClass(pat string, i int) (string, int) {
	n := len(pat)
	j := i
	if j < n && pat[j] == '!' {
		j++
	}
	if j < n && pat[j] == ']' {
		j++
	}
	for j < n && pat[j] != ']' {
		j++
	}
	if j >= n {
		return `\[`, i
	}
	var stuff string
	if !strings.Contains(pat[i:j], "-") {
		stuff = strings.ReplaceAll(pat[i:j], `\`, `\\`)
	} else {
		stuff = classRanges(pat, i, j)
	}
	stuff = strings.NewReplacer("&", `\&`, "~", `\~`, "|", `\|`).Replace(stuff)
	switch {
	case stuff == "":
		return `[^\x00-\x{10FFFF}]`, j + 1 // empty set: never matches
	case stuff == "!":
		return `.`, j + 1
	case stuff[0] == '!':
		stuff = "^" + stuff[1:]
	case stuff[0] == '^' || stuff[0] == '[':
		stuff = `\` + stuff
	}
	return "[" + stuff + "]", j + 1
}

// classRanges is fnmatch's handling of a set pat[i:j] holding '-': ranges
// kept, empty ranges dropped, literal backslashes and hyphens escaped.
func classRanges(pat string, i, j int) string {
	var chunks []string
	k := i + 1
	if pat[i] == '!' {
		k = i + 2
	}
	for {
		f := -1
		if k < j {
			f = strings.IndexByte(pat[k:j], '-')
		}
		if f < 0 {
			break
		}
		k += f
		chunks = append(chunks, pat[i:k])
		i = k + 1
		k += 3
	}
	if chunk := pat[i:j]; chunk != "" {
		chunks = append(chunks, chunk)
	} else {
		chunks[len(chunks)-1] += "-"
	}
	for k := len(chunks) - 1; k > 0; k-- {
		prev, cur := chunks[k-1], chunks[k]
		if prev != "" && cur != "" && prev[len(prev)-1] > cur[0] {
			chunks[k-1] = prev[:len(prev)-1] + cur[1:]
			chunks = append(chunks[:k], chunks[k+1:]...)
		}
	}
	for x, s := range chunks {
		chunks[x] = strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "-", `\-`)
	}
	return strings.Join(chunks, "-")
}
