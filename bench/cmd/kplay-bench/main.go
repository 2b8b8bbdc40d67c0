// Command kplay-bench compares kplay with ansible-playbook and plain
// OpenSSH on local test hosts and writes bench/RESULTS.md (see package
// bench). It needs root. `make bench` builds kplay and runs it:
//
//	kplay-bench -kplay bin/kplay -n 3,30,100 -kplay-only-n 300 -runs 5 -warmup 1 -out bench/RESULTS.md
//
// Sizes in -kplay-only-n are measured with kplay alone (Ansible would need
// about 2.3 s per host for the five steps, 5 runs at N=300 nearly an hour):
// they show how kplay's controller CPU and memory grow with N. -bastion-n
// (default 30, 0 for none) adds a bed of that many hosts behind one bastion,
// where kplay, Ansible and OpenSSH (ProxyJump) all go through it; the
// results count the connections and authentications at the bastion.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kplay/kplay/bench"
	"github.com/kplay/kplay/testbed"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kplay-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kplay-bench", flag.ContinueOnError)
	sizes := fs.String("n", "3,30,100", "numbers of hosts, comma-separated")
	kplayOnly := fs.String("kplay-only-n", "300", "more numbers of hosts, comma-separated, where only kplay runs (empty: none)")
	bastionN := fs.Int("bastion-n", 30, "hosts behind one bastion, where kplay, ansible and openssh run through it (0: no bastion bed)")
	runs := fs.Int("runs", 5, "measured rounds per size (the median is reported)")
	warmup := fs.Int("warmup", 1, "warm-up rounds per size, not counted")
	kplayBin := fs.String("kplay", "bin/kplay", "the kplay binary")
	out := fs.String("out", "bench/RESULTS.md", "where to write the results (empty: nowhere)")
	contenders := fs.String("contenders", "kplay,ansible,openssh,direct", "contenders, comma-separated (direct: the commands without SSH, a reference)")
	fullKube := fs.Int("full-kube-max", 3, "beds of at most this many hosts get the full kubeadm set-up; larger ones one PKI copied to all")
	strategy := fs.String("ansible-strategy", "linear", "ansible strategy plugin: linear or free")
	verbose := fs.Bool("v", false, "print testbed progress")
	profile := fs.Bool("profile", true, "after each size, one more kplay run with a CPU profile, summarised in the results")
	save := fs.String("save", "bench/RESULTS.json", "where to save the raw results as JSON (empty: nowhere)")
	from := fs.String("from", "", "render the results saved in this JSON file instead of measuring")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bastionN < 0 || *bastionN > testbed.MaxHosts {
		return fmt.Errorf("-bastion-n: bad size %d (0..%d)", *bastionN, testbed.MaxHosts)
	}
	cfg := bench.Config{
		Runs: *runs, Warmup: *warmup, KplayBin: *kplayBin, FullKubeMax: *fullKube, BastionHosts: *bastionN,
		AnsibleStrategy: *strategy, Contenders: strings.Split(*contenders, ","), Profile: *profile,
	}
	full, err := parseSizes("-n", *sizes)
	if err != nil {
		return err
	}
	only, err := parseSizes("-kplay-only-n", *kplayOnly)
	if err != nil {
		return err
	}
	for _, n := range only {
		if slices.Contains(full, n) {
			return fmt.Errorf("-kplay-only-n: %d is also in -n", n)
		}
	}
	if len(only) > 0 && !slices.Contains(cfg.Contenders, bench.Kplay) {
		return fmt.Errorf("-kplay-only-n %s without kplay in -contenders", *kplayOnly)
	}
	cfg.Sizes = append(full, only...)
	slices.Sort(cfg.Sizes)
	cfg.KplayOnly = only
	if *from != "" {
		data, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		var res bench.Results
		if err := json.Unmarshal(data, &res); err != nil {
			return fmt.Errorf("%s: %w", *from, err)
		}
		return report(&res, *out, "")
	}
	start := time.Now()
	cfg.Logf = func(format string, a ...any) {
		line := fmt.Sprintf(format, a...)
		if !*verbose && strings.HasPrefix(line, "testbed ") {
			return
		}
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), line)
	}
	if reason := testbed.Missing(testbed.Options{}); reason != "" {
		return fmt.Errorf("cannot run test hosts: %s", reason)
	}
	cfg.SizeDone = func(res *bench.Results) {
		// Keep what was measured if a later size fails.
		if err := saveJSON(res, *save); err != nil {
			fmt.Fprintln(os.Stderr, "kplay-bench:", err)
		}
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		if res != nil && (len(res.Sizes) > 0 || res.Bastion != nil) {
			fmt.Fprintln(os.Stderr, "kplay-bench: reporting the sizes measured before the error")
			_ = report(res, *out, *save)
		}
		return err
	}
	return report(res, *out, *save)
}

// parseSizes parses a comma-separated list of numbers of hosts.
func parseSizes(flagName, list string) ([]int, error) {
	var out []int
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > testbed.MaxHosts {
			return nil, fmt.Errorf("%s: bad size %q (1..%d)", flagName, s, testbed.MaxHosts)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%s: %d given twice", flagName, n)
		}
		out = append(out, n)
	}
	return out, nil
}

// report prints the summary and writes RESULTS.md and the raw JSON.
func report(res *bench.Results, out, save string) error {
	fmt.Print(res.Summary())
	if err := saveJSON(res, save); err != nil {
		return err
	}
	if out != "" {
		if err := os.WriteFile(out, []byte(res.Markdown()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", out)
	}
	return nil
}

// saveJSON writes the raw results to path, if not empty.
func saveJSON(res *bench.Results, path string) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
