package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/runner"
)

// commonFlags are the flags of run, validate and check.
type commonFlags struct {
	// inventory is the first -i source; inventories are all of them, in order.
	inventory   string
	inventories []string
	dryRun      bool
	limit       string
	forks       int
	vars        varFlag
	extraVars   []string
	output      string
	timeout     durationFlag
	acceptNew   bool
	sshConfig   string
	breakLock   bool
	within      durationFlag
	outputFile  string
	serve       string
	every       durationFlag
	verbosity   int
	tags        []string
	skipTags    []string
	startAt     string
	listHosts   bool
	listSteps   bool
	user        string
	privateKey  string
	become      bool
	askBecome   bool
	playbookArg []string
}

// verbose reports whether -v was given (-vv and -vvv show the same).
func (f *commonFlags) verbose() bool { return f.verbosity > 0 }

// varFlag collects repeated --var key=value.
type varFlag map[string]string

// String formats the collected values ("" when none, so that --help shows
// no default).
func (v varFlag) String() string {
	if len(v) == 0 {
		return ""
	}
	return fmt.Sprint(map[string]string(v))
}

// Set adds one key=value.
func (v varFlag) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	v[k] = val
	return nil
}

// Type names the value in --help.
func (v varFlag) Type() string { return "key=value" }

// durationFlag is a duration that accepts days ("30d").
type durationFlag struct{ d time.Duration }

// String formats the duration ("" when unset, so that --help shows no
// default).
func (d *durationFlag) String() string {
	if d.d == 0 {
		return ""
	}
	return yamlx.Duration(d.d).String()
}

// Set parses the duration.
func (d *durationFlag) Set(s string) error {
	v, err := yamlx.ParseDuration(s)
	if err != nil {
		return err
	}
	d.d = v
	return nil
}

// Type names the value in --help.
func (d *durationFlag) Type() string { return "duration" }

// command says which flags a command has.
type command struct {
	name         string
	withPlaybook bool // run and validate
	withCheck    bool // check
}

// commonFlagSet defines the flags of run, validate or check: the one
// place they are defined (GNU style, with Ansible's short flags where they
// mean the same).
func commonFlagSet(c command) (*pflag.FlagSet, *commonFlags) {
	f := &commonFlags{vars: varFlag{}}
	fs := newFlagSet(c.name)
	fs.StringArrayVarP(&f.inventories, "inventory", "i", nil, "inventory `source`: kplay or Ansible YAML, INI, a directory, or host1,host2, (repeatable, merged in order)")
	fs.StringVarP(&f.limit, "limit", "l", "", "only the hosts of these Ansible host `patterns`: names, groups, globs (cp*), ~regex, a,b or a:b (union), a:&b (and), a:!b (not), @FILE (one a line)")
	fs.IntVarP(&f.forks, "forks", "f", 0, "at most `N` hosts at once within a batch (default: the playbook's forks, or 50)")
	outputs := runOutputs
	if c.withCheck {
		outputs = checkOutputs
	}
	fs.StringVar(&f.output, "output", "text", "output `format`: "+orList(outputs))
	fs.Var(&f.timeout, "timeout", "default per-step `duration` (default 10m)")
	fs.BoolVar(&f.acceptNew, "accept-new-host-keys", false, "trust and record the key of a host not in known_hosts (never a changed key)")
	fs.StringVarP(&f.sshConfig, "ssh-config", "F", "", "OpenSSH client config `file` to read instead of ssh_config: in the inventory or ~/.ssh/config")
	fs.Var(f.vars, "var", "set a variable, `key=value` (repeatable; wins over all others)")
	fs.StringArrayVarP(&f.extraVars, "extra-vars", "e", nil, "set variables: `key=value` (several separated by spaces), JSON or YAML {...}, or @FILE (YAML or JSON); repeatable; as --var")
	fs.StringVarP(&f.user, "user", "u", "", "connect as this `user` where the inventory sets no ansible_user (default root)")
	fs.StringVar(&f.privateKey, "private-key", "", "SSH private key `file` where the inventory sets no ansible_ssh_private_key_file")
	fs.BoolVarP(&f.become, "become", "b", false, "run commands through sudo where the inventory sets no ansible_become")
	fs.BoolVarP(&f.askBecome, "ask-become-pass", "K", false, "prompt for the sudo password on the terminal, without echo (else KPLAY_BECOME_PASSWORD)")
	if c.withPlaybook {
		playbookFlags(fs, f)
	}
	if c.withCheck {
		f.within.d = 30 * 24 * time.Hour
		fs.Var(&f.within, "within", "fail (exit 3) when a certificate expires within this `duration`")
		fs.StringVar(&f.outputFile, "output-file", "", "write the --output report to `path` (atomically) and print the text table on stdout")
		f.every.d = time.Hour
		fs.StringVar(&f.serve, "serve", "", "run as a Prometheus exporter on `address` (host:port): check every --every and serve /metrics and /healthz from the last check")
		fs.Var(&f.every, "every", "with --serve, check this often (`duration`, default 1h, at least 10s)")
	}
	return fs, f
}

// playbookFlags are the flags of run and validate only.
func playbookFlags(fs *pflag.FlagSet, f *commonFlags) {
	fs.CountVarP(&f.verbosity, "verbose", "v", "show each shell command's full output under its step line (text output; -vv, -vvv: the same)")
	fs.BoolVarP(&f.dryRun, "dry-run", "C", false, "change nothing: show per host what each step would do (takes no run lock); -C as ansible-playbook --check")
	fs.BoolVar(&f.breakLock, "break-lock", false, "clear a stale run lock ("+runner.DefaultLockDir+") left on a host by a run that is gone: "+
		"its process on this controller has exited, or its heartbeat stopped 90s ago; a live lock is never cleared")
	fs.StringSliceVarP(&f.tags, "tags", "t", nil, "run only steps with these `tags` (comma-separated; all, always, never, tagged, untagged as in Ansible)")
	fs.StringSliceVar(&f.skipTags, "skip-tags", nil, "leave out steps with these `tags` (comma-separated)")
	fs.StringVar(&f.startAt, "start-at-step", "", "leave out every step before the first whose `name` (or type) is this, or matches it as a glob")
	fs.BoolVar(&f.listHosts, "list-hosts", false, "print each play's hosts and exit, contacting no host")
	fs.BoolVar(&f.listSteps, "list-steps", false, "print each play's steps with their tags, and the steps left out, and exit, contacting no host")
}

// newFlagSet is a GNU-style flag set that prints nothing itself: errors and
// --help are written by the caller (help on stdout, errors on stderr).
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("kplay "+name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// usageLines are each command's synopsis, first line of its --help.
func usageLine(c command) string {
	switch {
	case c.withPlaybook:
		return fmt.Sprintf("Usage: kplay %s PLAYBOOK -i INVENTORY [flags]", c.name)
	default:
		return fmt.Sprintf("Usage: kplay %s -i INVENTORY [flags]", c.name)
	}
}

// writeHelp writes a command's --help: synopsis and flags.
func writeHelp(w io.Writer, synopsis string, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nFlags:\n%s", synopsis, fs.FlagUsagesWrapped(100))
	fmt.Fprintln(w, "  -h, --help                   show this help on stdout")
}

// parseOrHelp parses args with fs. On --help it writes help to stdout and
// returns pflag.ErrHelp; on a bad flag it names it on stderr with the help.
func parseOrHelp(fs *pflag.FlagSet, synopsis string, args []string, stdout, stderr io.Writer) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		writeHelp(stdout, synopsis, fs)
		return err
	case err != nil:
		fmt.Fprintf(stderr, "kplay: %v\n\n", err)
		writeHelp(stderr, synopsis, fs)
		return errUsage
	}
	return nil
}

// parseFlags parses args, allowing flags before and after positional
// arguments (kplay run renew.yaml -i prod.yaml --dry-run). It returns
// pflag.ErrHelp after writing --help to stdout.
func parseFlags(name string, args []string, stdout, stderr io.Writer, withPlaybook, withCheck bool) (*commonFlags, error) {
	c := command{name: name, withPlaybook: withPlaybook, withCheck: withCheck}
	fs, f := commonFlagSet(c)
	if err := parseOrHelp(fs, usageLine(c), args, stdout, stderr); err != nil {
		return nil, err
	}
	f.playbookArg = fs.Args()
	usage := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "kplay: %s\n\n", fmt.Sprintf(format, a...))
		writeHelp(stderr, usageLine(c), fs)
		return errUsage
	}
	if len(f.inventories) > 0 {
		f.inventory = f.inventories[0]
	}
	outputs := runOutputs
	if withCheck {
		outputs = checkOutputs
	}
	switch {
	case withPlaybook && len(f.playbookArg) != 1:
		return nil, usage("want exactly one PLAYBOOK, got %d", len(f.playbookArg))
	case !withPlaybook && len(f.playbookArg) != 0:
		return nil, usage("unexpected argument %q", f.playbookArg[0])
	case f.inventory == "":
		return nil, usage("-i INVENTORY is required")
	case !slices.Contains(outputs, f.output):
		return nil, usage("--output must be %s, not %q", orList(outputs), f.output)
	case f.forks < 0:
		return nil, usage("--forks must be positive")
	}
	if err := checkOutputFile(f.outputFile, f.output); err != nil {
		return nil, usage("%v", err)
	}
	if err := checkServe(f); err != nil {
		return nil, usage("%v", err)
	}
	for _, e := range f.extraVars {
		if err := addExtraVars(f.vars, e); err != nil {
			return nil, usage("%v", err)
		}
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

// checkServe checks --serve and --every before any host is contacted.
func checkServe(f *commonFlags) error {
	if f.serve == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(f.serve); err != nil {
		return fmt.Errorf("--serve %q: want host:port (e.g. 127.0.0.1:9793 or :9793): %w", f.serve, err)
	}
	if f.outputFile != "" || (f.output != "text" && f.output != "prometheus") {
		return fmt.Errorf("--serve serves Prometheus metrics over HTTP: it takes no --output-file and no --output %s", f.output)
	}
	if f.every.d < 10*time.Second {
		return fmt.Errorf("--every %s: at least 10s between checks", f.every.d)
	}
	return nil
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

// errUsage is a bad command line, already reported on stderr.
var errUsage = errors.New("usage")

// limitList is --limit as runner.CompileOptions takes it: one Ansible
// host pattern string, split and resolved by the runner.
func (f *commonFlags) limitList() []string {
	if strings.TrimSpace(f.limit) == "" {
		return nil
	}
	return []string{f.limit}
}

// connDefaults are -u, --private-key and -b, for hosts whose inventory
// does not set them.
func (f *commonFlags) connDefaults() runner.ConnDefaults {
	return runner.ConnDefaults{User: f.user, PrivateKey: f.privateKey, Become: f.become}
}

// inventoryOptions are the flags of kplay inventory.
type inventoryOptions struct {
	sources     []string
	list, graph bool
	host        string
}

// inventorySynopsis is kplay inventory's usage line.
const inventorySynopsis = "Usage: kplay inventory -i SOURCE [-i SOURCE...] (--list | --graph [GROUP] | --host NAME)"

// inventoryFlagSet defines the flags of kplay inventory, as
// ansible-inventory's.
func inventoryFlagSet() (*pflag.FlagSet, *inventoryOptions) {
	o := &inventoryOptions{}
	fs := newFlagSet("inventory")
	fs.StringArrayVarP(&o.sources, "inventory", "i", nil, "inventory `source`: a YAML or INI file, a directory, or host1,host2, (repeatable, merged in order)")
	fs.BoolVar(&o.list, "list", false, "print every group and host as JSON, as ansible-inventory --list")
	fs.BoolVar(&o.graph, "graph", false, "print the group tree, as ansible-inventory --graph [GROUP]")
	fs.StringVar(&o.host, "host", "", "print the merged variables of host `NAME` as JSON")
	return fs, o
}

// runsSynopsis is kplay runs' usage line.
const runsSynopsis = "Usage: kplay runs [-n N]"

// runsFlagSet defines the flags of kplay runs.
func runsFlagSet() (*pflag.FlagSet, *int) {
	fs := newFlagSet("runs")
	n := fs.IntP("number", "n", 20, "show the newest `N` runs (0: all)")
	return fs, n
}
