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

func stripTemplates(s string) string { return tmplRe.ReplaceAllString(s, "") }

func (v *Vars) names() []string {
	n := make([]string, 0, len(v.m))
	for k := range v.m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
