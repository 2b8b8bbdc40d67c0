package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/runner"
)

// commonFlags are the flags of run, validate and check.
type commonFlags struct {
	inventory   string
	dryRun      bool
	limit       string
	forks       int
	vars        varFlag
	output      string
	timeout     durationFlag
	acceptNew   bool
	sshConfig   string
	breakLock   bool
	within      durationFlag
	outputFile  string
	verbose     bool
	playbookArg []string
}

// varFlag collects repeated --var key=value.
type varFlag map[string]string

// String formats the collected values.
func (v varFlag) String() string { return fmt.Sprint(map[string]string(v)) }

// Set adds one key=value.
func (v varFlag) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	v[k] = val
	return nil
}

// durationFlag is a duration that accepts days ("30d").
type durationFlag struct{ d time.Duration }

// String formats the duration.
func (d *durationFlag) String() string { return yamlx.Duration(d.d).String() }

// Set parses the duration.
func (d *durationFlag) Set(s string) error {
	v, err := yamlx.ParseDuration(s)
	if err != nil {
		return err
	}
	d.d = v
	return nil
}

// parseFlags parses args, allowing flags before and after positional
// arguments (kplay run renew.yaml -i prod.yaml --dry-run).
func parseFlags(name string, args []string, stderr io.Writer, withPlaybook, withCheck bool) (*commonFlags, error) {
	f := &commonFlags{vars: varFlag{}}
	fs := flag.NewFlagSet("kplay "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.inventory, "i", "", "inventory `file` (kplay or Ansible YAML)")
	fs.StringVar(&f.inventory, "inventory", "", "inventory `file` (same as -i)")
	fs.StringVar(&f.limit, "limit", "", "only these `hosts or groups`, comma-separated")
	fs.IntVar(&f.forks, "forks", 0, "at most `N` hosts at once within a batch (default: the playbook's forks, or 50)")
	outputs := runOutputs
	if withCheck {
		outputs = checkOutputs
	}
	fs.StringVar(&f.output, "output", "text", "output `format`: "+orList(outputs))
	fs.Var(&f.timeout, "timeout", "default per-step `duration` (default 10m)")
	fs.BoolVar(&f.acceptNew, "accept-new-host-keys", false, "trust and record the key of a host not in known_hosts (never a changed key)")
	fs.StringVar(&f.sshConfig, "F", "", "OpenSSH client config `file` to read instead of ssh_config: in the inventory or ~/.ssh/config")
	fs.Var(f.vars, "var", "set a variable, `key=value` (repeatable; wins over all others)")
	if withPlaybook {
		fs.BoolVar(&f.verbose, "v", false, "show each shell command's full output under its step line (text output)")
		fs.BoolVar(&f.dryRun, "dry-run", false, "change nothing: show per host what each step would do (takes no run lock)")
		fs.BoolVar(&f.breakLock, "break-lock", false, "clear a stale run lock ("+runner.DefaultLockDir+") left on a host by a run that is gone: "+
			"its process on this controller has exited, or its heartbeat stopped 90s ago; a live lock is never cleared")
	}
	if withCheck {
		f.within.d = 30 * 24 * time.Hour
		fs.Var(&f.within, "within", "fail (exit 3) when a certificate expires within this `duration`")
		fs.StringVar(&f.outputFile, "output-file", "", "write the --output report to `path` (atomically) and print the text table on stdout")
	}
	fs.Usage = func() {
		if withPlaybook {
			fmt.Fprintf(stderr, "Usage: kplay %s PLAYBOOK -i INVENTORY [flags]\n\nFlags:\n", name)
		} else {
			fmt.Fprintf(stderr, "Usage: kplay %s -i INVENTORY [flags]\n\nFlags:\n", name)
		}
		fs.PrintDefaults()
	}
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		f.playbookArg = append(f.playbookArg, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case withPlaybook && len(f.playbookArg) != 1:
		return nil, usageErr(fs, "want exactly one PLAYBOOK, got %d", len(f.playbookArg))
	case !withPlaybook && len(f.playbookArg) != 0:
		return nil, usageErr(fs, "unexpected argument %q", f.playbookArg[0])
	case f.inventory == "":
		return nil, usageErr(fs, "-i INVENTORY is required")
	case !slices.Contains(outputs, f.output):
		return nil, usageErr(fs, "--output must be %s, not %q", orList(outputs), f.output)
	case f.forks < 0:
		return nil, usageErr(fs, "--forks must be positive")
	}
	if err := checkOutputFile(f.outputFile, f.output); err != nil {
		return nil, usageErr(fs, "%v", err)
	}
	return f, nil
}

// The --output formats of kplay run and validate, and of kplay check.
var (
	runOutputs   = []string{"text", "json"}
	checkOutputs = []string{"text", "json", "junit", "prometheus"}
)

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// checkOutputFile checks --output-file before any host is contacted: it
// needs a report format other than text, and an existing directory.
func checkOutputFile(path, output string) error {
	if path == "" {
		return nil
	}
	if output == "text" {
		return fmt.Errorf("--output-file %s needs --output json, junit or prometheus (the text always goes to stdout)", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--output-file %s: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--output-file %s: %s is not a directory", path, dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("--output-file %s is a directory", path)
	}
	return nil
}

var errUsage = errors.New("usage")

func usageErr(fs *flag.FlagSet, format string, a ...any) error {
	fmt.Fprintf(fs.Output(), "kplay: %s\n", fmt.Sprintf(format, a...))
	fs.Usage()
	return errUsage
}

// limitList splits --limit.
func (f *commonFlags) limitList() []string {
	var out []string
	for _, s := range strings.Split(f.limit, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
