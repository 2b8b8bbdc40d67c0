package main

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// addExtraVars reads one -e value as ansible-playbook does: @FILE (YAML
// or JSON), inline JSON or YAML starting with { (a mapping), or key=value
// pairs separated by spaces. Variables are single values: a list or a
// mapping is refused, naming its key (and file and line). A quote in the
// key=value form is refused rather than guessed at.
func addExtraVars(vars varFlag, value string) error {
	if file, ok := strings.CutPrefix(value, "@"); ok {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("-e @%s: %w", file, err)
		}
		return addVarsDoc(vars, "-e @"+file, data)
	}
	if strings.HasPrefix(strings.TrimSpace(value), "{") || strings.HasPrefix(strings.TrimSpace(value), "[") {
		return addVarsDoc(vars, "-e", []byte(value))
	}
	if strings.ContainsAny(value, `'"\`) {
		return fmt.Errorf("-e %q: quotes in key=value are not supported: give one -e per variable, or JSON -e '{\"key\": \"a value\"}'", value)
	}
	for _, kv := range strings.Fields(value) {
		if err := vars.Set(kv); err != nil {
			return fmt.Errorf("-e %q: %w", value, err)
		}
	}
	if len(strings.Fields(value)) == 0 {
		return fmt.Errorf("-e: empty value")
	}
	return nil
}

// addVarsDoc adds a YAML or JSON mapping of single values to vars.
func addVarsDoc(vars varFlag, where string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: line %d: want a mapping of variable names to values", where, m.Line)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: line %d: key %q: a list or a mapping; kplay variables are single values", where, v.Line, k.Value)
		}
		if k.Value == "" {
			return fmt.Errorf("%s: line %d: empty variable name", where, k.Line)
		}
		if v.Tag == "!!null" {
			vars[k.Value] = ""
			continue
		}
		vars[k.Value] = v.Value
	}
	return nil
}
