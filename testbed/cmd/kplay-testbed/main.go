// Command kplay-testbed starts and stops kplay test beds that outlive it, for
// `make demo` and `make bench`:
//
//	kplay-testbed up --dir DIR [--prefix P] [--hosts N] [--kube | --real | --controllers] [--cert-validity 48h]
//	                 [--kubelet-period 2s] [--key-algorithm ECDSA-P256] [--bastion] [-v]
//	kplay-testbed down --dir DIR
//	kplay-testbed clean
//
// up writes DIR/inventory.yaml and DIR/bed.json (and with --bastion
// DIR/ssh_config, the only way to the hosts) and prints the inventory's
// path; the hosts keep running after it exits. down tears the bed in DIR
// down (and succeeds if there is none), leaving DIR's other files (logs,
// keys, certificates) for inspection. clean removes leftovers of crashed
// runs. It needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kplay/kplay/testbed"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kplay-testbed:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a command-line mistake.
type usageError struct{ msg string }

// Error returns the message.
func (e usageError) Error() string { return e.msg }

// run runs one subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: kplay-testbed up|down|clean [flags]"}
	}
	fs := flag.NewFlagSet("kplay-testbed "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "bed directory (required for up and down)")
	switch args[0] {
	case "up":
		prefix := fs.String("prefix", "", "name prefix (default derived from pid and subnet)")
		hosts := fs.Int("hosts", 3, "number of hosts")
		kube := fs.Bool("kube", false, "make every host a kubeadm control-plane node")
		real := fs.Bool("real", false, "like --kube, with real etcd and kube-apiserver instead of the stand-in")
		controllers := fs.Bool("controllers", false, "like --real, also running kube-controller-manager and kube-scheduler")
		validity := fs.Duration("cert-validity", 0, "kubeadm certificateValidityPeriod (0: kubeadm default)")
		period := fs.Duration("kubelet-period", 0, "kubelet stand-in poll period (default 2s)")
		keyAlg := fs.String("key-algorithm", "", `kubeadm encryptionAlgorithm (default RSA-2048; "ECDSA-P256" starts faster)`)
		bastion := fs.Bool("bastion", false, "reach the hosts only through a jump host in its own namespace (see DIR/ssh_config)")
		verbose := fs.Bool("v", false, "print progress to stderr")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if *dir == "" {
			return usageError{"up: --dir is required"}
		}
		o := testbed.Options{Prefix: *prefix, Hosts: *hosts, Kube: *kube, Real: *real, Controllers: *controllers, CertValidity: *validity,
			KubeletPeriod: *period, KeyAlgorithm: *keyAlg, Dir: *dir, Detach: true, Bastion: *bastion}
		if *verbose {
			o.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
		}
		if reason := testbed.Missing(o); reason != "" {
			return fmt.Errorf("up: cannot run test hosts: %s", reason)
		}
		ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
		defer cancel()
		b, err := testbed.Start(ctx, o)
		if err != nil {
			return fmt.Errorf("up: %w", err)
		}
		fmt.Fprintln(stdout, b.InventoryPath)
		return nil
	case "down":
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if *dir == "" {
			return usageError{"down: --dir is required"}
		}
		b, err := testbed.Load(ctx, *dir)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "kplay-testbed: down: no bed in %s (already down?)\n", *dir)
			return nil
		}
		if err != nil {
			return fmt.Errorf("down: %w", err)
		}
		if err := b.Close(); err != nil {
			return fmt.Errorf("down: %w", err)
		}
		return nil
	case "clean":
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if err := testbed.CleanStale(ctx); err != nil {
			return fmt.Errorf("clean: %w", err)
		}
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q: want up, down or clean", args[0])}
	}
}
