package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// sshdLines counts the lines of a host's sshd log that contain s.
func sshdLines(t *testing.T, h *testbed.Host, s string) int {
	t.Helper()
	b, err := os.ReadFile(h.Path(testbed.SSHDLog))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(s))
}

// bastionConfig is an OpenSSH client config: the bastion by its alias, and
// the hosts through it, with key and known_hosts.
func bastionConfig(bastion *testbed.Host, hosts []*testbed.Host, key, knownHosts string) string {
	var addrs []string
	for _, h := range hosts {
		addrs = append(addrs, h.Address)
	}
	return fmt.Sprintf(`Host bastion
  HostName %s
  User root
Host %s
  ProxyJump bastion
Host *
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  ConnectTimeout 20
`, bastion.Address, strings.Join(addrs, " "), key, knownHosts)
}

// TestBastion: control-plane hosts reachable only through a bastion (its
// own network namespace with two interfaces, and its own sshd; the
// controller has no route to the hosts), with ~/.ssh/config's ProxyJump: kplay check and
// the shipped renewal pass with nothing rolled back, over ONE connection
// and ONE authentication to the bastion per run; a changed bastion key is
// refused.
func TestBastion(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2, Kube: true, CertValidity: 48 * time.Hour, KeyAlgorithm: "ECDSA-P256", Bastion: true})
	cps, bastion := b.Hosts, b.Bastion
	for _, h := range cps {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Address, "6443"), time.Second); err == nil {
			c.Close()
			t.Fatalf("%s: 6443 open to the controller; the bed must cut it off", h.Name)
		}
	}
	home := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(home, ".ssh"), 0o700))
	must(t, os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(bastionConfig(bastion, cps, b.KeyPath, b.KnownHostsPath)), 0o600))
	env := []string{"HOME=" + home, "SSH_AUTH_SOCK="}
	// No key, user or known_hosts: all from ~/.ssh/config.
	inv := writeFile(t, "inventory.yaml", fmt.Sprintf("hosts:\n  cp1: {address: %s}\n  cp2: {address: %s}\ngroups:\n  control_plane: [cp1, cp2]\n", cps[0].Address, cps[1].Address))

	conns, auths := sshdLines(t, bastion, "Connection from"), sshdLines(t, bastion, "Accepted publickey")
	perRun := func(what string) {
		t.Helper()
		c, a := sshdLines(t, bastion, "Connection from")-conns, sshdLines(t, bastion, "Accepted publickey")-auths
		if c != 1 || a != 1 {
			t.Errorf("%s: %d TCP connections and %d authentications to the bastion, want 1 and 1", what, c, a)
		}
		conns, auths = conns+c, auths+a
	}
	if r := run(t, env, "check", "-i", inv, "--within", "1d"); r.code != 0 || !strings.Contains(r.stdout, "cp2") {
		t.Fatalf("check through the bastion: exit %d", r.code)
	}
	perRun("kplay check")

	r := run(t, env, "run", "../playbooks/renew.yaml", "-i", inv)
	if r.code != 0 || strings.Contains(r.stdout, "rolled back") || strings.Contains(r.stdout, "not checked") {
		t.Fatalf("renewal through the bastion: exit %d", r.code)
	}
	perRun("kplay run renew.yaml")
	for _, h := range cps {
		if s := run(t, env, "check", "-i", inv, "--within", "300d", "--limit", h.Name); s.code != 0 {
			t.Errorf("%s: certificates not renewed (check --within 300d: exit %d)", h.Name, s.code)
		}
	}

	t.Run("changed bastion key", func(t *testing.T) {
		kh, err := os.ReadFile(b.KnownHostsPath)
		must(t, err)
		tampered := writeFile(t, "known_hosts", tamperKey(t, string(kh), bastion.Address))
		cfg := writeFile(t, "ssh_config", bastionConfig(bastion, cps, b.KeyPath, tampered))
		r := run(t, env, "check", "-i", inv, "-F", cfg, "--within", "1d", "--accept-new-host-keys")
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "HOST KEY CHANGED for "+bastion.Address+":22") {
			t.Errorf("changed bastion key: exit %d, want 1 and HOST KEY CHANGED", r.code)
		}
	})
	t.Run("passphrase key in an agent", func(t *testing.T) { testAgentKey(t, b, inv, home) })
	t.Run("user certificate", func(t *testing.T) { testUserCert(t, b, inv, home) })
	t.Run("passphrase typed on the terminal", func(t *testing.T) { testTTYPrompt(t, b, inv, home) })
}

// tamperKey returns known_hosts content kh with addr's key replaced by a
// new one: the host's key as if it had changed.
func tamperKey(t *testing.T, kh, addr string) string {
	t.Helper()
	other := keygen(t, t.TempDir(), "other_key", "")
	pub, err := os.ReadFile(other + ".pub")
	must(t, err)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(kh), "\n") {
		if strings.HasPrefix(l, addr+" ") {
			f := strings.Fields(string(pub))
			l = addr + " " + f[0] + " " + f[1]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n") + "\n"
}

// keygen makes an ed25519 key pair at dir/name with passphrase pass.
func keygen(t *testing.T, dir, name, pass string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", pass, "-C", name, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	return p
}

// authorize adds a public key to root's authorized keys on hosts.
func authorize(t *testing.T, pubFile string, hosts ...*testbed.Host) {
	t.Helper()
	pub, err := os.ReadFile(pubFile)
	must(t, err)
	for _, h := range hosts {
		f, err := os.OpenFile(h.Path("/etc/ssh/authorized_keys/root"), os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		_, err = f.Write(pub)
		must(t, err)
		must(t, f.Close())
	}
}

// withConfig writes an ssh config for the bed's bastion set-up with key.
func withConfig(t *testing.T, b *testbed.Bed, key string) string {
	return writeFile(t, "ssh_config", bastionConfig(b.Bastion, b.Hosts, key, b.KnownHostsPath))
}

// testAgentKey: a passphrase-protected key works when an agent holds it,
// fails clearly without the agent, and works with KPLAY_KEY_PASSPHRASE.
func testAgentKey(t *testing.T, b *testbed.Bed, inv, home string) {
	dir := t.TempDir()
	const pass = "correct horse battery"
	key := keygen(t, dir, "id_pass", pass)
	authorize(t, key+".pub", append([]*testbed.Host{b.Bastion}, b.Hosts...)...)
	cfg := withConfig(t, b, key)
	base := []string{"HOME=" + home, "KPLAY_KEY_PASSPHRASE="}
	// Without the agent or a passphrase: refused, naming what is missing.
	r := run(t, append([]string{"SSH_AUTH_SOCK="}, "HOME="+home), "check", "-i", inv, "-F", cfg, "--within", "1d")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "passphrase-protected") {
		t.Errorf("encrypted key, no agent: exit %d, want 1 naming the passphrase", r.code)
	}
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	must(t, agent.Start())
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	askpass := filepath.Join(dir, "askpass.sh")
	must(t, os.WriteFile(askpass, []byte("#!/bin/sh\necho '"+pass+"'\n"), 0o700))
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	add.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	if r := run(t, append(base, "SSH_AUTH_SOCK="+sock), "check", "-i", inv, "-F", cfg, "--within", "1d"); r.code != 0 {
		t.Errorf("encrypted key held by the agent: exit %d", r.code)
	}
	if r := run(t, []string{"HOME=" + home, "SSH_AUTH_SOCK=", "KPLAY_KEY_PASSPHRASE=" + pass}, "check", "-i", inv, "-F", cfg, "--within", "1d"); r.code != 0 {
		t.Errorf("encrypted key with KPLAY_KEY_PASSPHRASE: exit %d", r.code)
	} else if strings.Contains(r.stdout+r.stderr, pass) {
		t.Error("the passphrase was printed")
	}
}

// testUserCert: a key that no host authorises gets in with a certificate
// from a CA the hosts' sshd trusts (TrustedUserCAKeys), found as
// KEY-cert.pub beside the key.
func testUserCert(t *testing.T, b *testbed.Bed, inv, home string) {
	dir := t.TempDir()
	ca := keygen(t, dir, "user_ca", "")
	key := keygen(t, dir, "id_cert", "")
	cfg := withConfig(t, b, key)
	env := []string{"HOME=" + home, "SSH_AUTH_SOCK="}
	if r := run(t, env, "check", "-i", inv, "-F", cfg, "--within", "1d"); r.code != 1 || !strings.Contains(r.stdout+r.stderr, "authentication refused") {
		t.Fatalf("unauthorised key without certificate: exit %d, want 1", r.code)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-s", ca, "-I", "kplay-test", "-n", "root", "-V", "-5m:+1h", key+".pub").CombinedOutput(); err != nil {
		t.Fatalf("signing: %v %s", err, out)
	}
	caPub, err := os.ReadFile(ca + ".pub")
	must(t, err)
	for _, h := range append([]*testbed.Host{b.Bastion}, b.Hosts...) {
		must(t, os.WriteFile(h.Path("/etc/ssh/user_ca.pub"), caPub, 0o644))
		restartSSHD(t, h, "TrustedUserCAKeys /etc/ssh/user_ca.pub\n")
	}
	if r := run(t, env, "check", "-i", inv, "-F", cfg, "--within", "1d"); r.code != 0 {
		t.Errorf("user certificate: exit %d", r.code)
	}
}

// restartSSHD puts lines first in a host's sshd_config and restarts sshd.
func restartSSHD(t *testing.T, h *testbed.Host, lines string) {
	t.Helper()
	p := h.Path("/etc/ssh/sshd_config")
	old, err := os.ReadFile(p)
	must(t, err)
	must(t, os.WriteFile(p, append([]byte(lines), old...), 0o644))
	must(t, h.KillSSHD(t.Context()))
	must(t, h.StartSSHD(t.Context()))
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
