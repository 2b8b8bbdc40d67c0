package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/kplay/kplay/inventory"
)

// cmdInventory implements kplay inventory, the counterpart of
// ansible-inventory: --list, --graph [GROUP] or --host NAME.
func cmdInventory(args []string, stdout, stderr io.Writer) int {
	fs, o := inventoryFlagSet()
	if err := parseOrHelp(fs, inventorySynopsis, args, stdout, stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	sources, list, graph, host := o.sources, o.list, o.graph, o.host
	modes := 0
	for _, on := range []bool{list, graph, host != ""} {
		if on {
			modes++
		}
	}
	switch {
	case len(sources) == 0:
		return inventoryUsage(stderr, fs, "-i SOURCE is required")
	case modes != 1:
		return inventoryUsage(stderr, fs, "want exactly one of --list, --graph or --host")
	case fs.NArg() > 1 || fs.NArg() == 1 && !graph:
		return inventoryUsage(stderr, fs, "unexpected argument %q", fs.Arg(0))
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

func inventoryUsage(stderr io.Writer, fs *pflag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(stderr, "kplay: %s\n\n", fmt.Sprintf(format, a...))
	writeHelp(stderr, inventorySynopsis, fs)
	return exitUsage
}
