package runner

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/kplay/kplay/internal/shellquote"
)

// tmplRe matches {{ name }} and {{ name | raw }}.
var tmplRe = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(\|\s*([a-z]+)\s*)?\}\}`)

// Vars is the resolved variable set of one host, implementing steps.Expander.
type Vars struct {
	m map[string]string
	// lists names the variables that are lists or mappings, with where
	// each was set: a template that uses one is an error.
	lists map[string]string
}

// structured records that name is a list or a mapping, set at where.
func (v *Vars) structured(name, where string) {
	if v.lists == nil {
		v.lists = map[string]string{}
	}
	v.lists[name] = where
}

// NewVars merges layers; later layers win.
func NewVars(layers ...map[string]string) *Vars {
	m := map[string]string{}
	for _, l := range layers {
		for k, v := range l {
			m[k] = v
		}
	}
	return &Vars{m: m}
}

// Get returns the value of name.
func (v *Vars) Get(name string) (string, bool) {
	s, ok := v.m[name]
	return s, ok
}

// Text substitutes values verbatim.
func (v *Vars) Text(s string) (string, error) { return v.expand(s, false) }

// Shell substitutes values shell-quoted, except `| raw`.
func (v *Vars) Shell(s string) (string, error) { return v.expand(s, true) }

func (v *Vars) expand(s string, quote bool) (string, error) {
	if quote {
		if err := quotedTemplate(s); err != nil {
			return "", err
		}
	}
	var firstErr error
	out := tmplRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := tmplRe.FindStringSubmatch(m)
		name, filter := sub[1], sub[3]
		val, ok := v.m[name]
		where, isList := v.lists[name]
		if isList && firstErr == nil {
			firstErr = fmt.Errorf("variable %q (%s) is a list or a mapping; kplay templates take single values", name, where)
		}
		if !ok && !isList && firstErr == nil {
			firstErr = fmt.Errorf("unknown variable %q (known: %s)", name, strings.Join(v.names(), ", "))
		}
		if strings.IndexByte(val, 0) >= 0 && firstErr == nil {
			firstErr = fmt.Errorf("variable %q holds a NUL byte, which no command line or path can carry", name)
		}
		switch filter {
		case "":
			if quote {
				return shellquote.Quote(val)
			}
			return val
		case "raw":
			return val
		case "quote":
			return shellquote.Quote(val)
		default:
			if firstErr == nil {
				firstErr = fmt.Errorf("unknown filter %q in %s (known: raw, quote)", filter, m)
			}
			return ""
		}
	})
	if firstErr != nil {
		return "", firstErr
	}
	if strings.IndexByte(out, 0) >= 0 {
		return "", fmt.Errorf("%q holds a NUL byte, which no command line or path can carry", s)
	}
	if strings.Contains(stripTemplates(s), "{{") {
		return "", fmt.Errorf("malformed template in %q: use {{ name }} or {{ name | raw }}", s)
	}
	return out, nil
}

// quotedTemplate rejects a template that a shell command puts inside single
// or double quotes: kplay quotes the value itself, so within quotes the
// value's own quotes would end the user's and let it run as code ('{{ x }}'
// with x = "'; rm -rf / #"). Only {{ x | raw }} may stand there, on purpose.
func quotedTemplate(s string) error {
	locs := tmplRe.FindAllStringSubmatchIndex(s, -1)
	next := 0  // the next template in locs
	var q byte // the open quote: ' or ", or 0
	line := 1
	for i := 0; i < len(s); i++ {
		if next < len(locs) && i == locs[next][0] {
			loc := locs[next]
			next++
			if q != 0 && (loc[6] < 0 || s[loc[6]:loc[7]] != "raw") {
				what := map[byte]string{'\'': "single", '"': "double"}[q]
				return fmt.Errorf("line %d of the command: %s is inside %s quotes, where the quotes kplay puts around its value would end yours: remove the quotes around it (kplay quotes the value), or write {{ %s | raw }} if you quote it yourself on purpose",
					line, s[loc[0]:loc[1]], what, s[loc[2]:loc[3]])
			}
			i = loc[1] - 1
			continue
		}
		switch c := s[i]; {
		case c == '\n':
			line++
		case q == '\'':
			if c == '\'' {
				q = 0
			}
		case c == '\\' && i+1 < len(s):
			if s[i+1] == '\n' {
				line++
			}
			i++ // an escaped character, outside single quotes
		case q == '"':
			if c == '"' {
				q = 0
			}
		case c == '\'' || c == '"':
			q = c
		}
	}
	return nil
}

func stripTemplates(s string) string { return tmplRe.ReplaceAllString(s, "") }

func (v *Vars) names() []string {
	n := make([]string, 0, len(v.m))
	for k := range v.m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
