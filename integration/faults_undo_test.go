package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// cutOwnConnection is a shell step that kills the sshd processes serving
// root's connections on the host (not the listener), so kplay's connection
// drops in the middle of the step and a new one can be opened.
const cutOwnConnection = `  - name: lose the connection
    shell: "pkill -f 'sshd: root' ; sleep 30"
`

// TestFaultConnectionLostBeforeRollback: a step fails because the SSH
// connection dropped, so the rollback's first undo meets a dead connection.
// kplay's own undo (renew_certs' restore from its backup) is repeatable: kplay
// connects again and runs it over the new connection, and the host is back
// byte for byte, with its run lock released. A shell step's undo is not
// repeatable (it need not be safe to run twice): it is reported failed, with
// the command to run by hand, never run again behind the user's back.
func TestFaultConnectionLostBeforeRollback(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1, Kube: true, CertValidity: 48 * time.Hour, KeyAlgorithm: "ECDSA-P256"})
	h := b.Hosts[0]
	env := []string{"HOME=" + t.TempDir()}
	kube := func() map[string]string { return only(snapshot(t, h), "etc/kubernetes") }

	t.Run("kplay's own undo", func(t *testing.T) {
		before := kube()
		pb := writeFile(t, "pb.yaml", "name: renew, then lose the connection\nhosts: all\nsteps:\n  - name: renew certs\n    renew_certs: {}\n"+cutOwnConnection)
		r := run(t, env, "run", pb, "-i", b.InventoryPath, "--output", "json")
		if r.code != 1 {
			t.Fatalf("exit %d, want 1", r.code)
		}
		hj := decodeReport(t, r.stdout).host(t, h.Name)
		renew := hj.Steps[0]
		if renew.Status != "rolled back" || !strings.Contains(renew.Rollback, "over a new SSH connection") {
			t.Errorf("renew certs: %s, rollback %q; want rolled back over a new SSH connection", renew.Status, renew.Rollback)
		}
		if strings.Contains(hj.State, "NEEDS ATTENTION") || len(hj.Restore) > 0 {
			t.Errorf("state %q, restore %v: the undo should have been run again", hj.State, hj.Restore)
		}
		if d := diffSnapshots(before, kube()); len(d) > 0 {
			t.Errorf("/etc/kubernetes differs after the rollback: %v", d)
		}
		if left := hostSh(t, h, "ls -d /var/lib/kplay/lock 2>/dev/null; true"); strings.TrimSpace(left) != "" {
			t.Errorf("the run lock was not released over the new connection: %q", left)
		}
	})

	t.Run("a shell step's undo", func(t *testing.T) {
		pb := writeFile(t, "pb.yaml", fmt.Sprintf("name: mark, then lose the connection\nhosts: all\nsteps:\n"+
			"  - name: mark\n    shell: {cmd: \"touch /tmp/marked\", undo: \"echo once >> /tmp/undone\"}\n%s", cutOwnConnection))
		hostSh(t, h, "rm -f /tmp/marked /tmp/undone")
		r := run(t, env, "run", pb, "-i", b.InventoryPath, "--output", "json")
		t.Cleanup(func() {
			_, _ = h.Exec(context.Background(), "rm", "-rf", "/var/lib/kplay/lock", "/tmp/marked", "/tmp/undone")
		})
		if r.code != 1 {
			t.Fatalf("exit %d, want 1", r.code)
		}
		hj := decodeReport(t, r.stdout).host(t, h.Name)
		if !strings.Contains(hj.State, "NEEDS ATTENTION") || len(hj.Restore) == 0 || !strings.Contains(hj.Restore[0], "echo once >> /tmp/undone") {
			t.Errorf("state %q, restore %v: want NEEDS ATTENTION with the undo command to run by hand", hj.State, hj.Restore)
		}
		if got := hostSh(t, h, "cat /tmp/undone 2>/dev/null; true"); got != "" {
			t.Errorf("the shell undo ran (%q): it must not be run again over a new connection", got)
		}
	})
}
