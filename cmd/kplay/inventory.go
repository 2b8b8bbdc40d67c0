package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kplay/kplay/inventory"
)

// sourcesFlag collects repeated -i sources, in order.
type sourcesFlag []string

// String joins the sources.
func (s *sourcesFlag) String() string { return strings.Join(*s, ",") }

// Set appends one source.
func (s *sourcesFlag) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// cmdInventory implements kplay inventory, the counterpart of
// ansible-inventory: --list, --graph [GROUP] or --host NAME.
func cmdInventory(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kplay inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sources sourcesFlag
	var list, graph bool
	var host string
	fs.Var(&sources, "i", "inventory `source`: a YAML or INI file, a directory, or host1,host2, (repeatable, merged in order)")
	fs.Var(&sources, "inventory", "inventory `source` (same as -i)")
	fs.BoolVar(&list, "list", false, "print every group and host as JSON, as ansible-inventory --list")
	fs.BoolVar(&graph, "graph", false, "print the group tree, as ansible-inventory --graph [GROUP]")
	fs.StringVar(&host, "host", "", "print the merged variables of host `NAME` as JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kplay inventory -i SOURCE [-i SOURCE...] (--list | --graph [GROUP] | --host NAME)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	modes := 0
	for _, on := range []bool{list, graph, host != ""} {
		if on {
			modes++
		}
	}
	switch {
	case len(sources) == 0:
		return inventoryUsage(fs, "-i SOURCE is required")
	case modes != 1:
		return inventoryUsage(fs, "want exactly one of --list, --graph or --host")
	case fs.NArg() > 1 || fs.NArg() == 1 && !graph:
		return inventoryUsage(fs, "unexpected argument %q", fs.Arg(0))
	}
	inv, err := inventory.Load(sources...)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	out, err := inventoryOutput(inv, list, graph, host, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "kplay: %v\n", err)
		return exitUsage
	}
	fmt.Fprint(stdout, out)
	return exitOK
}

func inventoryOutput(inv *inventory.Inventory, list, graph bool, host, group string) (string, error) {
	switch {
	case list:
		return inv.ListJSON(), nil
	case graph:
		if group == "" {
			group = "all"
		}
		return inv.Graph(group)
	}
	return inv.HostJSON(host)
}

func inventoryUsage(fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(fs.Output(), "kplay: %s\n", fmt.Sprintf(format, a...))
	fs.Usage()
	return exitUsage
}
