package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplay/kplay/runner"
	"github.com/kplay/kplay/testbed"
)

// dialAll opens the named hosts' connections at once through s and runs
// hostname on each; it returns the connections and the first error.
func dialAll(ctx context.Context, t *testing.T, s *runner.SSH, inv *runner.Inventory, names ...string) ([]runner.Conn, error) {
	t.Helper()
	conns := make([]runner.Conn, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			c, err := s.Dialer()(ctx, inv.Host(n))
			if err != nil {
				errs[i] = err
				return
			}
			{
				var out []byte
				out, err = c.Run(ctx, "hostname")
				if err == nil && strings.TrimSpace(string(out)) != n {
					err = fmt.Errorf("%s: hostname %q", n, out)
				}
			}
			conns[i], errs[i] = c, err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return conns, err
		}
	}
	return conns, nil
}

// TestBastionRedial: the hosts' shared bastion connection drops mid-run
// (the bastion's sshd is killed with its sessions). The hosts' connections
// fail; a dial while the bastion is down fails; once it is back, dialling
// the hosts again works (the failure was not kept) over ONE new shared
// bastion connection; and the bastion's host key is verified again on
// that new connection (a changed key is refused).
func TestBastionRedial(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2, Bastion: true})
	cps, bastion := b.Hosts, b.Bastion
	kh, err := os.ReadFile(b.KnownHostsPath)
	must(t, err)
	khPath := writeFile(t, "known_hosts", string(kh)) // tampered with below
	cfg := writeFile(t, "ssh_config", bastionConfig(bastion, cps, b.KeyPath, khPath))
	inv, err := runner.LoadInventory(writeFile(t, "inventory.yaml",
		fmt.Sprintf("hosts:\n  cp1: {address: %s}\n  cp2: {address: %s}\n", cps[0].Address, cps[1].Address)))
	must(t, err)
	s, err := runner.NewSSH(&runner.Plan{Hosts: inv.Hosts}, runner.SSHOptions{ConfigFile: cfg})
	must(t, err)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	conns, err := dialAll(ctx, t, s, inv, "cp1", "cp2")
	if err != nil {
		t.Fatalf("through the bastion: %v", err)
	}
	if n := s.Bastions(); n != 1 {
		t.Fatalf("%d bastion connections for two hosts, want 1", n)
	}

	must(t, bastion.KillSSHD(ctx)) // the shared connection drops mid-run
	for _, c := range conns {
		if _, err := c.Run(ctx, "true"); err == nil {
			t.Errorf("%s: a command ran after its bastion's sshd was killed", c.Name())
		}
		c.Close()
	}
	if _, err := dialAll(ctx, t, s, inv, "cp1"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("dial while the bastion is down: %v, want connection refused", err)
	}

	must(t, bastion.StartSSHD(ctx))
	before := sshdLines(t, bastion, "Accepted publickey")
	conns, err = dialAll(ctx, t, s, inv, "cp1", "cp2")
	if err != nil {
		t.Fatalf("redial once the bastion is back: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}
	if n := sshdLines(t, bastion, "Accepted publickey") - before; n != 1 {
		t.Errorf("redial: %d authentications to the bastion for two hosts, want 1 shared", n)
	}
	if n := s.Bastions(); n != 2 {
		t.Errorf("%d bastion connections made in all, want 2 (the first, and one after the drop)", n)
	}

	// The bastion comes back with another key: the redial refuses it.
	must(t, bastion.KillSSHD(ctx))
	must(t, os.WriteFile(khPath, []byte(tamperKey(t, string(kh), bastion.Address)), 0o600))
	must(t, bastion.StartSSHD(ctx))
	if _, err := dialAll(ctx, t, s, inv, "cp1"); err == nil || !strings.Contains(err.Error(), "HOST KEY CHANGED for "+bastion.Address+":22") {
		t.Errorf("redial to a bastion whose key changed: %v, want HOST KEY CHANGED", err)
	}
}
