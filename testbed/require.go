package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Missing returns why this machine cannot run a bed with these options
// (not root, a missing tool), or "" if it can.
func Missing(o Options) string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	// go builds the host init (and the stand-ins); ip wires the network;
	// nsenter runs Host.Exec.
	tools := []string{"go", "ip", "nsenter"}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Sprintf("%s not found", t)
		}
	}
	for _, p := range []string{"/usr/sbin/sshd", "/usr/lib/openssh/sftp-server", "/proc/self/ns/net", "/proc/self/ns/pid"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Sprintf("%s: %v", p, err)
		}
	}
	return ""
}

// Require starts a bed for a test and closes it when the test ends. If the
// machine cannot run one (see Missing) the test is skipped, except when the
// environment has CI=true: integration tests never skip in CI, so there it
// fails. Start's progress goes to tb.Logf unless o.Logf is set.
func Require(tb testing.TB, o Options) *Bed {
	tb.Helper()
	if reason := Missing(o); reason != "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("testbed: cannot run test hosts: %s (CI=true, so integration tests must not skip)", reason)
		}
		tb.Skipf("SKIP: testbed: cannot run test hosts: %s; integration tests need root and the tools of make deps: run them with sudo make unit (CI=true makes this a failure)", reason)
	}
	if o.Logf == nil {
		o.Logf = tb.Logf
	}
	// Building kubeadm the first time takes minutes; everything else seconds.
	ctx, cancel := context.WithTimeout(tb.Context(), 15*time.Minute)
	defer cancel()
	b, err := Start(ctx, o)
	if err != nil {
		tb.Fatalf("testbed: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("testbed: %v", err)
		}
	})
	return b
}
