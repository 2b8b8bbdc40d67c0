package steps

import (
	"sort"

	"gopkg.in/yaml.v3"
)

// Expander expands {{ name }} templates with one host's variables.
type Expander interface {
	// Text substitutes values verbatim (for paths, names and other data).
	Text(s string) (string, error)
	// Shell substitutes each value shell-quoted as one word, except `{{ name | raw }}`.
	Shell(s string) (string, error)
	// Get returns a variable's value, and whether it is set.
	Get(name string) (string, bool)
}

// Factory builds a step from its YAML parameters, bound to one host's variables.
// It must validate strictly (unknown keys are errors) and contact no host.
type Factory func(params *yaml.Node, x Expander) (Step, error)

// Registry maps a step type name (the YAML key) to its factory.
type Registry map[string]Factory

// Names returns the registered step type names, sorted.
func (r Registry) Names() []string {
	n := make([]string, 0, len(r))
	for k := range r {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Builtin returns a new registry holding every built-in step type.
func Builtin() Registry {
	return Registry{
		"shell":             NewShell,
		"check_time":        NewCheckTime,
		"check_certs":       NewCheckCerts,
		"backup":            NewBackup,
		"renew_certs":       NewRenewCerts,
		"verify_enddate":    NewVerifyEnddate,
		"restart_apiserver": NewRestartAPIServer,
		"fetch_admin_conf":  NewFetchAdminConf,

		"renew_kubelet_client": NewRenewKubeletClient,
	}
}
