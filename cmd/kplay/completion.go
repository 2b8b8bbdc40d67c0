package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// commandNames are kplay's commands, in usage order.
func commandNames() []string {
	return []string{"run", "validate", "check", "runs", "inventory", "completion", "version", "help"}
}

// commandFlagSets returns each command's flag set, for completion.
func commandFlagSets() map[string]*pflag.FlagSet {
	run, _ := commonFlagSet(command{name: "run", withPlaybook: true})
	validate, _ := commonFlagSet(command{name: "validate", withPlaybook: true})
	check, _ := commonFlagSet(command{name: "check", withCheck: true})
	inv, _ := inventoryFlagSet()
	runs, _ := runsFlagSet()
	return map[string]*pflag.FlagSet{"run": run, "validate": validate, "check": check, "inventory": inv, "runs": runs}
}

// cmdCompletion implements kplay completion bash|zsh|fish: a script that
// completes commands, flags and file names.
func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, completionHelp)
		return exitOK
	}
	if len(args) != 1 {
		fmt.Fprintf(stderr, "kplay: want one shell: bash, zsh or fish\n\n%s", completionHelp)
		return exitUsage
	}
	switch args[0] {
	case "bash":
		fmt.Fprint(stdout, bashCompletion(commandFlagSets()))
	case "zsh":
		fmt.Fprint(stdout, "#compdef kplay\n# kplay completion for zsh, through its bash completion.\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion(commandFlagSets()))
	case "fish":
		fmt.Fprint(stdout, fishCompletion(commandFlagSets()))
	default:
		fmt.Fprintf(stderr, "kplay: unknown shell %q: want bash, zsh or fish\n\n%s", args[0], completionHelp)
		return exitUsage
	}
	return exitOK
}

const completionHelp = `Usage: kplay completion bash|zsh|fish

Print a shell completion script for kplay's commands and flags:
  bash:  source <(kplay completion bash)      or save it in /etc/bash_completion.d/kplay
  zsh:   source <(kplay completion zsh)       or save it as _kplay in a directory of $fpath
  fish:  kplay completion fish > ~/.config/fish/completions/kplay.fish
`

// flagWords lists a flag set's flags as --long and -s words.
func flagWords(fs *pflag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *pflag.Flag) {
		out = append(out, "--"+f.Name)
		if f.Shorthand != "" {
			out = append(out, "-"+f.Shorthand)
		}
	})
	return append(out, "--help")
}

// bashCompletion is a bash completion function: commands first, then the
// command's flags, else file names.
func bashCompletion(sets map[string]*pflag.FlagSet) string {
	var b strings.Builder
	b.WriteString("# kplay completion for bash: source <(kplay completion bash)\n_kplay() {\n")
	b.WriteString("  local cur=${COMP_WORDS[COMP_CWORD]}\n")
	fmt.Fprintf(&b, "  if [ \"$COMP_CWORD\" -eq 1 ]; then\n    mapfile -t COMPREPLY < <(compgen -W '%s' -- \"$cur\")\n    return\n  fi\n", strings.Join(commandNames(), " "))
	b.WriteString("  local flags=\n  case ${COMP_WORDS[1]} in\n")
	for _, name := range commandNames() {
		if fs, ok := sets[name]; ok {
			fmt.Fprintf(&b, "    %s) flags='%s' ;;\n", name, strings.Join(flagWords(fs), " "))
		}
	}
	b.WriteString("    completion) mapfile -t COMPREPLY < <(compgen -W 'bash zsh fish' -- \"$cur\"); return ;;\n  esac\n")
	b.WriteString("  if [[ $cur == -* ]]; then\n    mapfile -t COMPREPLY < <(compgen -W \"$flags\" -- \"$cur\")\n  else\n    mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n  fi\n}\n")
	b.WriteString("complete -o filenames -F _kplay kplay\n")
	return b.String()
}

// fishCompletion is a fish completion script.
func fishCompletion(sets map[string]*pflag.FlagSet) string {
	var b strings.Builder
	b.WriteString("# kplay completion for fish: kplay completion fish > ~/.config/fish/completions/kplay.fish\n")
	fmt.Fprintf(&b, "complete -c kplay -f -n __fish_use_subcommand -a '%s'\n", strings.Join(commandNames(), " "))
	b.WriteString("complete -c kplay -f -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
	for _, name := range commandNames() {
		fs, ok := sets[name]
		if !ok {
			continue
		}
		fs.VisitAll(func(f *pflag.Flag) {
			fmt.Fprintf(&b, "complete -c kplay -n '__fish_seen_subcommand_from %s' -l %s", name, f.Name)
			if f.Shorthand != "" {
				fmt.Fprintf(&b, " -s %s", f.Shorthand)
			}
			if f.Value.Type() != "bool" && f.Value.Type() != "count" {
				b.WriteString(" -r")
			}
			fmt.Fprintf(&b, " -d %s\n", fishQuote(firstSentence(f.Usage)))
		})
	}
	return b.String()
}

// firstSentence shortens a flag's usage for fish's descriptions.
func firstSentence(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	if i := strings.IndexAny(s, ":;("); i > 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// fishQuote single-quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
