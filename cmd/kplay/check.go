package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// cmdCheck implements kplay check: the shipped check playbook as a CI gate.
func cmdCheck(ctx, rollbackCtx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags("check", args, stderr, false, true)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	_ = f
	fmt.Fprintln(stderr, "kplay check: not implemented yet (needs the check_certs step)")
	return exitFailed
}
